
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'mirror' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'mirror'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'mirror' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy one image: an index with its selected children, or one manifest')
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'Show what `copy` would move, without writing anything (the same as `copy --dry-run`)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show an image where it is: platforms, sizes, absent children, attestations, signatures')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check that an image holds where it is: complete, sparse by design, or stripped from a recorded original')
            [CompletionResult]::new('sync', 'sync', [CompletionResultType]::ParameterValue, 'Mirror every image of a config file (the nightly air-gap job)')
            [CompletionResult]::new('inventory', 'inventory', [CompletionResultType]::ParameterValue, 'List the blobs and manifests a registry or layout holds (the format of a --state file)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'mirror;copy' {
            [CompletionResult]::new('--platform', '--platform', [CompletionResultType]::ParameterName, 'Platforms to copy, os/arch[/variant] (repeatable, comma-separated); default: all')
            [CompletionResult]::new('--attestations', '--attestations', [CompletionResultType]::ParameterName, 'Index entries that attest another entry: follow it (bound), always, or never')
            [CompletionResult]::new('--unbound', '--unbound', [CompletionResultType]::ParameterName, 'Index entries with no platform that attest nothing')
            [CompletionResult]::new('--referrers-type', '--referrers-type', [CompletionResultType]::ParameterName, 'Only referrers of this artifact type (repeatable), e.g. application/vnd.dev.sigstore.bundle.v0.3+json')
            [CompletionResult]::new('--on-sparse-reject', '--on-sparse-reject', [CompletionResultType]::ParameterName, 'What to do when the destination refuses the sparse index; a list is tried in order (required,strip)')
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Incremental bundle: leave out the blobs FILE lists (delivered by earlier bundles), then add what this bundle delivers to FILE. The destination must be oci: or oci-archive:')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Concurrent transfers')
            [CompletionResult]::new('--retry-times', '--retry-times', [CompletionResultType]::ParameterName, 'Retries of a failed request (connection error, 408, 429, 5xx)')
            [CompletionResult]::new('--max-requests', '--max-requests', [CompletionResultType]::ParameterName, 'Requests in flight to one registry host, blob transfers included')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'The final report on stdout')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Also write the JSON report to FILE')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'Progress on stderr: bars on a terminal (auto), bars always, or plain lines (never)')
            [CompletionResult]::new('--src-creds', '--src-creds', [CompletionResultType]::ParameterName, 'Credentials for the source registry')
            [CompletionResult]::new('--dest-creds', '--dest-creds', [CompletionResultType]::ParameterName, 'Credentials for the destination registry')
            [CompletionResult]::new('--authfile', '--authfile', [CompletionResultType]::ParameterName, 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json')
            [CompletionResult]::new('--src-cert-dir', '--src-cert-dir', [CompletionResultType]::ParameterName, 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d')
            [CompletionResult]::new('--dest-cert-dir', '--dest-cert-dir', [CompletionResultType]::ParameterName, 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d')
            [CompletionResult]::new('--src-tls-verify', '--src-tls-verify', [CompletionResultType]::ParameterName, 'Verify the source registry''s TLS certificate (=false allows plain http)')
            [CompletionResult]::new('--dest-tls-verify', '--dest-tls-verify', [CompletionResultType]::ParameterName, 'Verify the destination registry''s TLS certificate (=false allows plain http)')
            [CompletionResult]::new('--all-platforms', '--all-platforms', [CompletionResultType]::ParameterName, 'Copy every entry of the index (a full, non-sparse copy)')
            [CompletionResult]::new('--referrers', '--referrers', [CompletionResultType]::ParameterName, 'Also copy the OCI 1.1 referrers (signatures, SBOMs) of every copied manifest (default)')
            [CompletionResult]::new('--no-referrers', '--no-referrers', [CompletionResultType]::ParameterName, 'Do not copy referrers')
            [CompletionResult]::new('--signatures', '--signatures', [CompletionResultType]::ParameterName, 'Also copy cosign-style sha256-<hex>.sig/.att/.sbom tags of copied manifests (default)')
            [CompletionResult]::new('--no-signatures', '--no-signatures', [CompletionResultType]::ParameterName, 'Do not copy cosign-style signature tags')
            [CompletionResult]::new('--skip-missing-platforms', '--skip-missing-platforms', [CompletionResultType]::ParameterName, 'A requested platform the index lacks is a warning, not an error')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Plan only: read the source, HEAD the destination, write nothing')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print errors only (the report too is left out with --format text)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print errors only (the report too is left out with --format text)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'mirror;plan' {
            [CompletionResult]::new('--platform', '--platform', [CompletionResultType]::ParameterName, 'Platforms to copy, os/arch[/variant] (repeatable, comma-separated); default: all')
            [CompletionResult]::new('--attestations', '--attestations', [CompletionResultType]::ParameterName, 'Index entries that attest another entry: follow it (bound), always, or never')
            [CompletionResult]::new('--unbound', '--unbound', [CompletionResultType]::ParameterName, 'Index entries with no platform that attest nothing')
            [CompletionResult]::new('--referrers-type', '--referrers-type', [CompletionResultType]::ParameterName, 'Only referrers of this artifact type (repeatable), e.g. application/vnd.dev.sigstore.bundle.v0.3+json')
            [CompletionResult]::new('--on-sparse-reject', '--on-sparse-reject', [CompletionResultType]::ParameterName, 'What to do when the destination refuses the sparse index; a list is tried in order (required,strip)')
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Incremental bundle: leave out the blobs FILE lists (delivered by earlier bundles), then add what this bundle delivers to FILE. The destination must be oci: or oci-archive:')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Concurrent transfers')
            [CompletionResult]::new('--retry-times', '--retry-times', [CompletionResultType]::ParameterName, 'Retries of a failed request (connection error, 408, 429, 5xx)')
            [CompletionResult]::new('--max-requests', '--max-requests', [CompletionResultType]::ParameterName, 'Requests in flight to one registry host, blob transfers included')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'The final report on stdout')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Also write the JSON report to FILE')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'Progress on stderr: bars on a terminal (auto), bars always, or plain lines (never)')
            [CompletionResult]::new('--src-creds', '--src-creds', [CompletionResultType]::ParameterName, 'Credentials for the source registry')
            [CompletionResult]::new('--dest-creds', '--dest-creds', [CompletionResultType]::ParameterName, 'Credentials for the destination registry')
            [CompletionResult]::new('--authfile', '--authfile', [CompletionResultType]::ParameterName, 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json')
            [CompletionResult]::new('--src-cert-dir', '--src-cert-dir', [CompletionResultType]::ParameterName, 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d')
            [CompletionResult]::new('--dest-cert-dir', '--dest-cert-dir', [CompletionResultType]::ParameterName, 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d')
            [CompletionResult]::new('--src-tls-verify', '--src-tls-verify', [CompletionResultType]::ParameterName, 'Verify the source registry''s TLS certificate (=false allows plain http)')
            [CompletionResult]::new('--dest-tls-verify', '--dest-tls-verify', [CompletionResultType]::ParameterName, 'Verify the destination registry''s TLS certificate (=false allows plain http)')
            [CompletionResult]::new('--all-platforms', '--all-platforms', [CompletionResultType]::ParameterName, 'Copy every entry of the index (a full, non-sparse copy)')
            [CompletionResult]::new('--referrers', '--referrers', [CompletionResultType]::ParameterName, 'Also copy the OCI 1.1 referrers (signatures, SBOMs) of every copied manifest (default)')
            [CompletionResult]::new('--no-referrers', '--no-referrers', [CompletionResultType]::ParameterName, 'Do not copy referrers')
            [CompletionResult]::new('--signatures', '--signatures', [CompletionResultType]::ParameterName, 'Also copy cosign-style sha256-<hex>.sig/.att/.sbom tags of copied manifests (default)')
            [CompletionResult]::new('--no-signatures', '--no-signatures', [CompletionResultType]::ParameterName, 'Do not copy cosign-style signature tags')
            [CompletionResult]::new('--skip-missing-platforms', '--skip-missing-platforms', [CompletionResultType]::ParameterName, 'A requested platform the index lacks is a warning, not an error')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Plan only: read the source, HEAD the destination, write nothing')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print errors only (the report too is left out with --format text)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print errors only (the report too is left out with --format text)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'mirror;inspect' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output: a tree (text) or JSON with full digests')
            [CompletionResult]::new('--creds', '--creds', [CompletionResultType]::ParameterName, 'Credentials for the registry')
            [CompletionResult]::new('--authfile', '--authfile', [CompletionResultType]::ParameterName, 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json')
            [CompletionResult]::new('--cert-dir', '--cert-dir', [CompletionResultType]::ParameterName, 'CAs (*.crt) and a client certificate (*.cert + *.key) for the registry, instead of certs.d')
            [CompletionResult]::new('--tls-verify', '--tls-verify', [CompletionResultType]::ParameterName, 'Verify the registry''s TLS certificate (=false allows plain http)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Concurrent manifest reads')
            [CompletionResult]::new('--retry-times', '--retry-times', [CompletionResultType]::ParameterName, 'Retries of a failed request (connection error, 408, 429, 5xx)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'mirror;verify' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output: a summary (text) or JSON')
            [CompletionResult]::new('--creds', '--creds', [CompletionResultType]::ParameterName, 'Credentials for the registry')
            [CompletionResult]::new('--authfile', '--authfile', [CompletionResultType]::ParameterName, 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json')
            [CompletionResult]::new('--cert-dir', '--cert-dir', [CompletionResultType]::ParameterName, 'CAs (*.crt) and a client certificate (*.cert + *.key) for the registry, instead of certs.d')
            [CompletionResult]::new('--tls-verify', '--tls-verify', [CompletionResultType]::ParameterName, 'Verify the registry''s TLS certificate (=false allows plain http)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Concurrent manifest reads')
            [CompletionResult]::new('--retry-times', '--retry-times', [CompletionResultType]::ParameterName, 'Retries of a failed request (connection error, 408, 429, 5xx)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)')
            [CompletionResult]::new('--deep', '--deep', [CompletionResultType]::ParameterName, 'Also read every blob and check its digest')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'mirror;sync' {
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'The sync config (YAML)')
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Incremental bundles: leave out the blobs FILE lists, then add what was delivered to FILE')
            [CompletionResult]::new('--shard', '--shard', [CompletionResultType]::ParameterName, 'Take only this worker''s share K of N of the (image, tag) pairs (stable across runs)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Concurrent transfers within an image')
            [CompletionResult]::new('--parallel-images', '--parallel-images', [CompletionResultType]::ParameterName, '(image, tag) pairs copied at once, sharing one connection pool per registry')
            [CompletionResult]::new('--retry-times', '--retry-times', [CompletionResultType]::ParameterName, 'Retries of a failed request (connection error, 408, 429, 5xx)')
            [CompletionResult]::new('--max-requests', '--max-requests', [CompletionResultType]::ParameterName, 'Requests in flight to one registry host, blob transfers included, for hosts the config''s `registries:` does not limit')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'The final report on stdout')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Also write the JSON report to FILE')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'Progress on stderr: an overall bar and a line per image in flight on a terminal (auto), always, or one plain line per finished tag (never)')
            [CompletionResult]::new('--src-creds', '--src-creds', [CompletionResultType]::ParameterName, 'Credentials for the source registry')
            [CompletionResult]::new('--dest-creds', '--dest-creds', [CompletionResultType]::ParameterName, 'Credentials for the destination registry')
            [CompletionResult]::new('--authfile', '--authfile', [CompletionResultType]::ParameterName, 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman''s auth.json and docker''s config.json')
            [CompletionResult]::new('--src-cert-dir', '--src-cert-dir', [CompletionResultType]::ParameterName, 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d')
            [CompletionResult]::new('--dest-cert-dir', '--dest-cert-dir', [CompletionResultType]::ParameterName, 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d')
            [CompletionResult]::new('--src-tls-verify', '--src-tls-verify', [CompletionResultType]::ParameterName, 'Verify the source registry''s TLS certificate (=false allows plain http)')
            [CompletionResult]::new('--dest-tls-verify', '--dest-tls-verify', [CompletionResultType]::ParameterName, 'Verify the destination registry''s TLS certificate (=false allows plain http)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Plan every image: read sources, HEAD destinations, write nothing')
            [CompletionResult]::new('--fail-fast', '--fail-fast', [CompletionResultType]::ParameterName, 'Stop at the first image that fails (default: keep going and report every failure)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print errors only')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'mirror;inventory' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'text: counts and sizes; json: the state-file format')
            [CompletionResult]::new('--creds', '--creds', [CompletionResultType]::ParameterName, 'Credentials for the registries')
            [CompletionResult]::new('--tls-verify', '--tls-verify', [CompletionResultType]::ParameterName, 'Verify the registries'' TLS certificates (=false allows plain http)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'mirror;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'mirror;help' {
            [CompletionResult]::new('copy', 'copy', [CompletionResultType]::ParameterValue, 'Copy one image: an index with its selected children, or one manifest')
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'Show what `copy` would move, without writing anything (the same as `copy --dry-run`)')
            [CompletionResult]::new('inspect', 'inspect', [CompletionResultType]::ParameterValue, 'Show an image where it is: platforms, sizes, absent children, attestations, signatures')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check that an image holds where it is: complete, sparse by design, or stripped from a recorded original')
            [CompletionResult]::new('sync', 'sync', [CompletionResultType]::ParameterValue, 'Mirror every image of a config file (the nightly air-gap job)')
            [CompletionResult]::new('inventory', 'inventory', [CompletionResultType]::ParameterValue, 'List the blobs and manifests a registry or layout holds (the format of a --state file)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'mirror;help;copy' {
            break
        }
        'mirror;help;plan' {
            break
        }
        'mirror;help;inspect' {
            break
        }
        'mirror;help;verify' {
            break
        }
        'mirror;help;sync' {
            break
        }
        'mirror;help;inventory' {
            break
        }
        'mirror;help;completions' {
            break
        }
        'mirror;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
