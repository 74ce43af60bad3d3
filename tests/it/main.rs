//! One integration-test binary (builds once): real registries, skopeo and umoci as independent
//! checks, and the test doubles in `support` for what no installable registry does.
mod copy;
mod examples;
mod layout;
mod plan;
mod support;
mod support_selftest;
mod sync;
