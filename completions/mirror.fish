# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mirror_global_optspecs
    string join \n h/help V/version
end

function __fish_mirror_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mirror_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mirror_using_subcommand
    set -l cmd (__fish_mirror_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mirror -n "__fish_mirror_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mirror -n "__fish_mirror_needs_command" -s V -l version -d 'Print version'
complete -c mirror -n "__fish_mirror_needs_command" -f -a "copy" -d 'Copy one image: an index with its selected children, or one manifest'
complete -c mirror -n "__fish_mirror_needs_command" -f -a "plan" -d 'Show what `copy` would move, without writing anything (the same as `copy --dry-run`)'
complete -c mirror -n "__fish_mirror_needs_command" -f -a "inspect" -d 'Show an image where it is: platforms, sizes, absent children, attestations, signatures'
complete -c mirror -n "__fish_mirror_needs_command" -f -a "verify" -d 'Check that an image holds where it is: complete, sparse by design, or stripped from a recorded original'
complete -c mirror -n "__fish_mirror_needs_command" -f -a "sync" -d 'Mirror every image of a config file (the nightly air-gap job)'
complete -c mirror -n "__fish_mirror_needs_command" -f -a "inventory" -d 'List the blobs and manifests a registry or layout holds (the format of a --state file)'
complete -c mirror -n "__fish_mirror_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c mirror -n "__fish_mirror_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l platform -d 'Platforms to copy, os/arch[/variant] (repeatable, comma-separated); default: all' -r
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l attestations -d 'Index entries that attest another entry: follow it (bound), always, or never' -r -f -a "bound\t''
all\t''
none\t''"
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l unbound -d 'Index entries with no platform that attest nothing' -r -f -a "keep\t''
drop\t''"
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l referrers-type -d 'Only referrers of this artifact type (repeatable), e.g. application/vnd.dev.sigstore.bundle.v0.3+json' -r
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l on-sparse-reject -d 'What to do when the destination refuses the sparse index; a list is tried in order (required,strip)' -r -f -a "report\t'Stop (exit 3): the kept children stay by digest; the report prices the alternatives'
complete\t'Copy the dropped entries too and push the original index (digest kept)'
required\t'Copy only the entries the destination names, until it accepts the original index'
strip\t'Push an index of the kept entries (new digest), tied to the original for `mirror verify`'"
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l state -d 'Incremental bundle: leave out the blobs FILE lists (delivered by earlier bundles), then add what this bundle delivers to FILE. The destination must be oci: or oci-archive:' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l jobs -d 'Concurrent transfers' -r
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l retry-times -d 'Retries of a failed request (connection error, 408, 429, 5xx)' -r
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l max-requests -d 'Requests in flight to one registry host, blob transfers included' -r
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l timeout -d 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)' -r
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l format -d 'The final report on stdout' -r -f -a "text\t''
json\t''"
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l report -d 'Also write the JSON report to FILE' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l progress -d 'Progress on stderr: bars on a terminal (auto), bars always, or plain lines (never)' -r -f -a "auto\t'Bars when stderr is a terminal, else one line per finished item'
always\t'Bars even when stderr is not a terminal'
never\t'One line per finished item'"
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l src-creds -d 'Credentials for the source registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l dest-creds -d 'Credentials for the destination registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l authfile -d 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman\'s auth.json and docker\'s config.json' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l src-cert-dir -d 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l dest-cert-dir -d 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l src-tls-verify -d 'Verify the source registry\'s TLS certificate (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l dest-tls-verify -d 'Verify the destination registry\'s TLS certificate (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l all-platforms -d 'Copy every entry of the index (a full, non-sparse copy)'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l referrers -d 'Also copy the OCI 1.1 referrers (signatures, SBOMs) of every copied manifest (default)'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l no-referrers -d 'Do not copy referrers'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l signatures -d 'Also copy cosign-style sha256-<hex>.sig/.att/.sbom tags of copied manifests (default)'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l no-signatures -d 'Do not copy cosign-style signature tags'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l skip-missing-platforms -d 'A requested platform the index lacks is a warning, not an error'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -l dry-run -d 'Plan only: read the source, HEAD the destination, write nothing'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -s q -l quiet -d 'Print errors only (the report too is left out with --format text)'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -s v -l verbose -d 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
complete -c mirror -n "__fish_mirror_using_subcommand copy" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l platform -d 'Platforms to copy, os/arch[/variant] (repeatable, comma-separated); default: all' -r
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l attestations -d 'Index entries that attest another entry: follow it (bound), always, or never' -r -f -a "bound\t''
all\t''
none\t''"
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l unbound -d 'Index entries with no platform that attest nothing' -r -f -a "keep\t''
drop\t''"
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l referrers-type -d 'Only referrers of this artifact type (repeatable), e.g. application/vnd.dev.sigstore.bundle.v0.3+json' -r
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l on-sparse-reject -d 'What to do when the destination refuses the sparse index; a list is tried in order (required,strip)' -r -f -a "report\t'Stop (exit 3): the kept children stay by digest; the report prices the alternatives'
complete\t'Copy the dropped entries too and push the original index (digest kept)'
required\t'Copy only the entries the destination names, until it accepts the original index'
strip\t'Push an index of the kept entries (new digest), tied to the original for `mirror verify`'"
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l state -d 'Incremental bundle: leave out the blobs FILE lists (delivered by earlier bundles), then add what this bundle delivers to FILE. The destination must be oci: or oci-archive:' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l jobs -d 'Concurrent transfers' -r
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l retry-times -d 'Retries of a failed request (connection error, 408, 429, 5xx)' -r
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l max-requests -d 'Requests in flight to one registry host, blob transfers included' -r
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l timeout -d 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)' -r
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l format -d 'The final report on stdout' -r -f -a "text\t''
json\t''"
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l report -d 'Also write the JSON report to FILE' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l progress -d 'Progress on stderr: bars on a terminal (auto), bars always, or plain lines (never)' -r -f -a "auto\t'Bars when stderr is a terminal, else one line per finished item'
always\t'Bars even when stderr is not a terminal'
never\t'One line per finished item'"
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l src-creds -d 'Credentials for the source registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l dest-creds -d 'Credentials for the destination registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l authfile -d 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman\'s auth.json and docker\'s config.json' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l src-cert-dir -d 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l dest-cert-dir -d 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l src-tls-verify -d 'Verify the source registry\'s TLS certificate (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l dest-tls-verify -d 'Verify the destination registry\'s TLS certificate (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l all-platforms -d 'Copy every entry of the index (a full, non-sparse copy)'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l referrers -d 'Also copy the OCI 1.1 referrers (signatures, SBOMs) of every copied manifest (default)'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l no-referrers -d 'Do not copy referrers'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l signatures -d 'Also copy cosign-style sha256-<hex>.sig/.att/.sbom tags of copied manifests (default)'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l no-signatures -d 'Do not copy cosign-style signature tags'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l skip-missing-platforms -d 'A requested platform the index lacks is a warning, not an error'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -l dry-run -d 'Plan only: read the source, HEAD the destination, write nothing'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -s q -l quiet -d 'Print errors only (the report too is left out with --format text)'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -s v -l verbose -d 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
complete -c mirror -n "__fish_mirror_using_subcommand plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -l format -d 'Output: a tree (text) or JSON with full digests' -r -f -a "text\t''
json\t''"
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -l creds -d 'Credentials for the registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -l authfile -d 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman\'s auth.json and docker\'s config.json' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -l cert-dir -d 'CAs (*.crt) and a client certificate (*.cert + *.key) for the registry, instead of certs.d' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -l tls-verify -d 'Verify the registry\'s TLS certificate (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -l jobs -d 'Concurrent manifest reads' -r
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -l retry-times -d 'Retries of a failed request (connection error, 408, 429, 5xx)' -r
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -l timeout -d 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)' -r
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -s v -l verbose -d 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
complete -c mirror -n "__fish_mirror_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l format -d 'Output: a summary (text) or JSON' -r -f -a "text\t''
json\t''"
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l creds -d 'Credentials for the registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l authfile -d 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman\'s auth.json and docker\'s config.json' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l cert-dir -d 'CAs (*.crt) and a client certificate (*.cert + *.key) for the registry, instead of certs.d' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l tls-verify -d 'Verify the registry\'s TLS certificate (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l jobs -d 'Concurrent manifest reads' -r
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l retry-times -d 'Retries of a failed request (connection error, 408, 429, 5xx)' -r
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l timeout -d 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)' -r
complete -c mirror -n "__fish_mirror_using_subcommand verify" -l deep -d 'Also read every blob and check its digest'
complete -c mirror -n "__fish_mirror_using_subcommand verify" -s v -l verbose -d 'Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)'
complete -c mirror -n "__fish_mirror_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l config -d 'The sync config (YAML)' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l state -d 'Incremental bundles: leave out the blobs FILE lists, then add what was delivered to FILE' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l shard -d 'Take only this worker\'s share K of N of the (image, tag) pairs (stable across runs)' -r
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l jobs -d 'Concurrent transfers within an image' -r
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l parallel-images -d '(image, tag) pairs copied at once, sharing one connection pool per registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l retry-times -d 'Retries of a failed request (connection error, 408, 429, 5xx)' -r
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l max-requests -d 'Requests in flight to one registry host, blob transfers included, for hosts the config\'s `registries:` does not limit' -r
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l timeout -d 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)' -r
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l format -d 'The final report on stdout' -r -f -a "text\t''
json\t''"
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l report -d 'Also write the JSON report to FILE' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l progress -d 'Progress on stderr: an overall bar and a line per image in flight on a terminal (auto), always, or one plain line per finished tag (never)' -r -f -a "auto\t'Bars when stderr is a terminal, else one line per finished item'
always\t'Bars even when stderr is not a terminal'
never\t'One line per finished item'"
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l src-creds -d 'Credentials for the source registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l dest-creds -d 'Credentials for the destination registry' -r
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l authfile -d 'Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman\'s auth.json and docker\'s config.json' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l src-cert-dir -d 'CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l dest-cert-dir -d 'CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d' -r -F
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l src-tls-verify -d 'Verify the source registry\'s TLS certificate (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l dest-tls-verify -d 'Verify the destination registry\'s TLS certificate (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l dry-run -d 'Plan every image: read sources, HEAD destinations, write nothing'
complete -c mirror -n "__fish_mirror_using_subcommand sync" -l fail-fast -d 'Stop at the first image that fails (default: keep going and report every failure)'
complete -c mirror -n "__fish_mirror_using_subcommand sync" -s q -l quiet -d 'Print errors only'
complete -c mirror -n "__fish_mirror_using_subcommand sync" -s v -l verbose -d 'Print more about what happens'
complete -c mirror -n "__fish_mirror_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mirror -n "__fish_mirror_using_subcommand inventory" -l format -d 'text: counts and sizes; json: the state-file format' -r -f -a "text\t''
json\t''"
complete -c mirror -n "__fish_mirror_using_subcommand inventory" -l creds -d 'Credentials for the registries' -r
complete -c mirror -n "__fish_mirror_using_subcommand inventory" -l tls-verify -d 'Verify the registries\' TLS certificates (=false allows plain http)' -r -f -a "true\t''
false\t''"
complete -c mirror -n "__fish_mirror_using_subcommand inventory" -l timeout -d 'A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)' -r
complete -c mirror -n "__fish_mirror_using_subcommand inventory" -s h -l help -d 'Print help'
complete -c mirror -n "__fish_mirror_using_subcommand completions" -s h -l help -d 'Print help'
complete -c mirror -n "__fish_mirror_using_subcommand help; and not __fish_seen_subcommand_from copy plan inspect verify sync inventory completions help" -f -a "copy" -d 'Copy one image: an index with its selected children, or one manifest'
complete -c mirror -n "__fish_mirror_using_subcommand help; and not __fish_seen_subcommand_from copy plan inspect verify sync inventory completions help" -f -a "plan" -d 'Show what `copy` would move, without writing anything (the same as `copy --dry-run`)'
complete -c mirror -n "__fish_mirror_using_subcommand help; and not __fish_seen_subcommand_from copy plan inspect verify sync inventory completions help" -f -a "inspect" -d 'Show an image where it is: platforms, sizes, absent children, attestations, signatures'
complete -c mirror -n "__fish_mirror_using_subcommand help; and not __fish_seen_subcommand_from copy plan inspect verify sync inventory completions help" -f -a "verify" -d 'Check that an image holds where it is: complete, sparse by design, or stripped from a recorded original'
complete -c mirror -n "__fish_mirror_using_subcommand help; and not __fish_seen_subcommand_from copy plan inspect verify sync inventory completions help" -f -a "sync" -d 'Mirror every image of a config file (the nightly air-gap job)'
complete -c mirror -n "__fish_mirror_using_subcommand help; and not __fish_seen_subcommand_from copy plan inspect verify sync inventory completions help" -f -a "inventory" -d 'List the blobs and manifests a registry or layout holds (the format of a --state file)'
complete -c mirror -n "__fish_mirror_using_subcommand help; and not __fish_seen_subcommand_from copy plan inspect verify sync inventory completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c mirror -n "__fish_mirror_using_subcommand help; and not __fish_seen_subcommand_from copy plan inspect verify sync inventory completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
