//! One integration-test binary (builds once): real registries, skopeo and umoci as independent
//! checks, and the test doubles in `support` for what no installable registry does.
mod auth;
mod bundle;
mod copy;
mod docs;
mod examples;
mod fallback;
mod hardening;
mod layout;
mod output;
mod plan;
mod referrers;
mod reliability;
mod scale;
mod support;
mod support_selftest;
mod sync;
