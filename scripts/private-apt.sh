# Sourced by scripts that fetch a package from another Debian suite without touching the system's
# apt sources: private_apt SUITE sets $private_apt_dir (a temporary directory, removed on exit)
# and the array private_apt_opts (apt-get options for a private configuration that reuses this
# machine's Debian mirror and keyring with SUITE), and runs `apt-get update` in it.
private_apt() {
  local suite="$1" mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  # The first non-security Debian archive the machine uses: deb822 "URIs:" or one-line "deb" entries.
  mirror="$( { sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/*.sources 2>/dev/null
               sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' /etc/apt/sources.list 2>/dev/null; } \
    | tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -1 || true)"
  private_apt_mirror="${mirror:-http://deb.debian.org/debian}"
  private_apt_dir="$(mktemp -d /tmp/private-apt.XXXXXX)"
  trap 'rm -rf "$private_apt_dir"' EXIT
  mkdir -p "$private_apt_dir/lists/partial" "$private_apt_dir/cache/archives/partial"
  echo "deb [signed-by=$keyring] ${private_apt_mirror%/} $suite main" > "$private_apt_dir/sources.list"
  chmod -R a+rX "$private_apt_dir"
  private_apt_opts=(-o "Dir::Etc::SourceList=$private_apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$private_apt_dir/lists" -o "Dir::Cache=$private_apt_dir/cache" -o APT::Sandbox::User=root)
  ${SUDO:-} apt-get "${private_apt_opts[@]}" update -qq
}
