
use builtin;
use str;

set edit:completion:arg-completer[mirror] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'mirror'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'mirror'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand copy 'Copy one image: an index with its selected children, or one manifest'
            cand plan 'Show what `copy` would move, without writing anything (the same as `copy --dry-run`)'
            cand inspect 'Show an image where it is: platforms, sizes, absent children, attestations, signatures'
            cand verify 'Check that an image holds where it is: complete, sparse by design, or stripped from a recorded original'
            cand sync 'Mirror every image of a config file (the nightly air-gap job)'
            cand inventory 'List the blobs and manifests a registry or layout holds (the format of a --state file)'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'mirror;copy'= {
            cand --platform 'Platforms to copy, os/arch[/variant] (repeatable, comma-separated); default: all'
            cand --attestations 'Index entries that attest another entry: follow it (bound), always, or never'
            cand --unbound 'Index entries with no platform that attest nothing'
            cand --referrers-type 'Only referrers of this artifact type (repeatable), e.g. application/vnd.dev.sigstore.bundle.v0.3+json'
            cand --on-sparse-reject 'What to do when the destination refuses the sparse index; a list is tried in order (required,strip)'
            cand --state 'Incremental bundle: leave out the blobs FILE lists (delivered by earlier bundles), then add what this bundle delivers to FILE. The destination must be oci: or oci-archive:'
            cand --jobs 'Concurrent transfers'
            cand --retry-times 'Retries of a failed request (connection error, 408, 429, 5xx)'
            cand --max-requests 'Requests in flight to one registry host, blob transfers included'
            cand --timeout 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)'
            cand --format 'The final report on stdout'
            cand --report 'Also write the JSON report to FILE'
            cand --progress 'Progress on stderr: bars on a terminal (auto), bars always, or plain lines (never)'
            cand --src-creds 'Credentials for the source registry'
            cand --dest-creds 'Credentials for the destination registry'
            cand --authfile 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json'
            cand --src-cert-dir 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d'
            cand --dest-cert-dir 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d'
            cand --src-tls-verify 'Verify the source registry''s TLS certificate (=false allows plain http)'
            cand --dest-tls-verify 'Verify the destination registry''s TLS certificate (=false allows plain http)'
            cand --all-platforms 'Copy every entry of the index (a full, non-sparse copy)'
            cand --referrers 'Also copy the OCI 1.1 referrers (signatures, SBOMs) of every copied manifest (default)'
            cand --no-referrers 'Do not copy referrers'
            cand --signatures 'Also copy cosign-style sha256-<hex>.sig/.att/.sbom tags of copied manifests (default)'
            cand --no-signatures 'Do not copy cosign-style signature tags'
            cand --skip-missing-platforms 'A requested platform the index lacks is a warning, not an error'
            cand --dry-run 'Plan only: read the source, HEAD the destination, write nothing'
            cand -q 'Print errors only (the report too is left out with --format text)'
            cand --quiet 'Print errors only (the report too is left out with --format text)'
            cand -v 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
            cand --verbose 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'mirror;plan'= {
            cand --platform 'Platforms to copy, os/arch[/variant] (repeatable, comma-separated); default: all'
            cand --attestations 'Index entries that attest another entry: follow it (bound), always, or never'
            cand --unbound 'Index entries with no platform that attest nothing'
            cand --referrers-type 'Only referrers of this artifact type (repeatable), e.g. application/vnd.dev.sigstore.bundle.v0.3+json'
            cand --on-sparse-reject 'What to do when the destination refuses the sparse index; a list is tried in order (required,strip)'
            cand --state 'Incremental bundle: leave out the blobs FILE lists (delivered by earlier bundles), then add what this bundle delivers to FILE. The destination must be oci: or oci-archive:'
            cand --jobs 'Concurrent transfers'
            cand --retry-times 'Retries of a failed request (connection error, 408, 429, 5xx)'
            cand --max-requests 'Requests in flight to one registry host, blob transfers included'
            cand --timeout 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)'
            cand --format 'The final report on stdout'
            cand --report 'Also write the JSON report to FILE'
            cand --progress 'Progress on stderr: bars on a terminal (auto), bars always, or plain lines (never)'
            cand --src-creds 'Credentials for the source registry'
            cand --dest-creds 'Credentials for the destination registry'
            cand --authfile 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json'
            cand --src-cert-dir 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d'
            cand --dest-cert-dir 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d'
            cand --src-tls-verify 'Verify the source registry''s TLS certificate (=false allows plain http)'
            cand --dest-tls-verify 'Verify the destination registry''s TLS certificate (=false allows plain http)'
            cand --all-platforms 'Copy every entry of the index (a full, non-sparse copy)'
            cand --referrers 'Also copy the OCI 1.1 referrers (signatures, SBOMs) of every copied manifest (default)'
            cand --no-referrers 'Do not copy referrers'
            cand --signatures 'Also copy cosign-style sha256-<hex>.sig/.att/.sbom tags of copied manifests (default)'
            cand --no-signatures 'Do not copy cosign-style signature tags'
            cand --skip-missing-platforms 'A requested platform the index lacks is a warning, not an error'
            cand --dry-run 'Plan only: read the source, HEAD the destination, write nothing'
            cand -q 'Print errors only (the report too is left out with --format text)'
            cand --quiet 'Print errors only (the report too is left out with --format text)'
            cand -v 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
            cand --verbose 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'mirror;inspect'= {
            cand --format 'Output: a tree (text) or JSON with full digests'
            cand --creds 'Credentials for the registry'
            cand --authfile 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json'
            cand --cert-dir 'CAs (*.crt) and a client certificate (*.cert + *.key) for the registry, instead of certs.d'
            cand --tls-verify 'Verify the registry''s TLS certificate (=false allows plain http)'
            cand --jobs 'Concurrent manifest reads'
            cand --retry-times 'Retries of a failed request (connection error, 408, 429, 5xx)'
            cand --timeout 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)'
            cand -v 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
            cand --verbose 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'mirror;verify'= {
            cand --format 'Output: a summary (text) or JSON'
            cand --creds 'Credentials for the registry'
            cand --authfile 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json'
            cand --cert-dir 'CAs (*.crt) and a client certificate (*.cert + *.key) for the registry, instead of certs.d'
            cand --tls-verify 'Verify the registry''s TLS certificate (=false allows plain http)'
            cand --jobs 'Concurrent manifest reads'
            cand --retry-times 'Retries of a failed request (connection error, 408, 429, 5xx)'
            cand --timeout 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)'
            cand --deep 'Also read every blob and check its digest'
            cand -v 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
            cand --verbose 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'mirror;sync'= {
            cand --config 'The sync config (YAML)'
            cand --state 'Incremental bundles: leave out the blobs FILE lists, then add what was delivered to FILE'
            cand --shard 'Take only this worker''s share K of N of the (image, tag) pairs (stable across runs)'
            cand --jobs 'Concurrent transfers within an image'
            cand --parallel-images '(image, tag) pairs copied at once, sharing one connection pool per registry'
            cand --retry-times 'Retries of a failed request (connection error, 408, 429, 5xx)'
            cand --max-requests 'Requests in flight to one registry host, blob transfers included, for hosts the config''s `registries:` does not limit'
            cand --timeout 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)'
            cand --format 'The final report on stdout'
            cand --report 'Also write the JSON report to FILE'
            cand --progress 'Progress on stderr: an overall bar and a line per image in flight on a terminal (auto), always, or one plain line per finished tag (never)'
            cand --src-creds 'Credentials for the source registry'
            cand --dest-creds 'Credentials for the destination registry'
            cand --authfile 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json'
            cand --src-cert-dir 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d'
            cand --dest-cert-dir 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d'
            cand --src-tls-verify 'Verify the source registry''s TLS certificate (=false allows plain http)'
            cand --dest-tls-verify 'Verify the destination registry''s TLS certificate (=false allows plain http)'
            cand --dry-run 'Plan every image: read sources, HEAD destinations, write nothing'
            cand --fail-fast 'Stop at the first image that fails (default: keep going and report every failure)'
            cand -q 'Print errors only'
            cand --quiet 'Print errors only'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'mirror;inventory'= {
            cand --format 'text: counts and sizes; json: the state-file format'
            cand --creds 'Credentials for the registries'
            cand --tls-verify 'Verify the registries'' TLS certificates (=false allows plain http)'
            cand --timeout 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'mirror;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'mirror;help'= {
            cand copy 'Copy one image: an index with its selected children, or one manifest'
            cand plan 'Show what `copy` would move, without writing anything (the same as `copy --dry-run`)'
            cand inspect 'Show an image where it is: platforms, sizes, absent children, attestations, signatures'
            cand verify 'Check that an image holds where it is: complete, sparse by design, or stripped from a recorded original'
            cand sync 'Mirror every image of a config file (the nightly air-gap job)'
            cand inventory 'List the blobs and manifests a registry or layout holds (the format of a --state file)'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'mirror;help;copy'= {
        }
        &'mirror;help;plan'= {
        }
        &'mirror;help;inspect'= {
        }
        &'mirror;help;verify'= {
        }
        &'mirror;help;sync'= {
        }
        &'mirror;help;inventory'= {
        }
        &'mirror;help;completions'= {
        }
        &'mirror;help;help'= {
        }
    ]
    $completions[$command]
}
