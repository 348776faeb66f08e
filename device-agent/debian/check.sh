#!/usr/bin/env bash
# Builds the agent's Debian package with cargo-deb and checks what it holds: the
# binary, the systemd unit, the example configuration as a conffile, maintainer
# scripts that create the system user, and sane dependencies. Verifies the unit
# with systemd-analyze where it is installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
START=$SECONDS

CARGO_DEB_VERSION=3.8.0
if [[ "$(cargo deb --version 2>/dev/null || true)" != *"$CARGO_DEB_VERSION"* ]]; then
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
for tool in dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install dpkg)" >&2; exit 1; }
done

OUT=target/debian
rm -f "$OUT"/countersign-agent_*.deb
cargo deb -p countersign-agent --output "$OUT/" --fast
DEB=$(ls "$OUT"/countersign-agent_*.deb)
echo "== $DEB"

fail() { echo "check failed: $*" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

dpkg-deb -I "$DEB" | tee "$WORK/info"
dpkg-deb -c "$DEB" | tee "$WORK/contents"
dpkg-deb -e "$DEB" "$WORK/control"
dpkg-deb -x "$DEB" "$WORK/root"

has() { grep -qE "$1" "$WORK/contents" || fail "the package lacks $2"; }
has ' \./usr/bin/countersign-agent$' "the binary"
has ' \./(usr/)?lib/systemd/system/countersign-agent\.service$' "the systemd unit"
has ' \./etc/countersign-agent/agent\.toml$' "the example configuration"
grep -qx '/etc/countersign-agent/agent.toml' "$WORK/control/conffiles" \
  || fail "agent.toml is not a conffile"

grep -q '^ Package: countersign-agent$' "$WORK/info" || fail "wrong package name"
depends=$(sed -n 's/^ Depends: //p' "$WORK/info")
[[ $depends == *libc6* ]] || fail "Depends lacks libc6: $depends"
[[ $depends == *passwd* ]] || fail "Depends lacks passwd (useradd): $depends"
# rustls: no OpenSSL, and nothing of a desktop or a database.
[[ $depends != *libssl* && $depends != *libpq* ]] || fail "unexpected dependency: $depends"

grep -q 'useradd --system' "$WORK/control/postinst" || fail "postinst does not create the user"
grep -q 'deb-systemd-helper' "$WORK/control/postinst" || fail "postinst lacks the systemd fragments"
grep -q 'systemctl --system daemon-reload' "$WORK/control/postrm" || fail "postrm lacks the systemd fragments"
for script in postinst postrm; do
  sh -n "$WORK/control/$script" || fail "$script is not valid shell"
done

unit=$(find "$WORK/root" -name countersign-agent.service | head -n1)
for setting in 'User=countersign-agent' 'SupplementaryGroups=dialout' 'ProtectSystem=strict' \
  'ProtectHome=true' 'PrivateTmp=true' 'NoNewPrivileges=true' 'StateDirectory=countersign-agent' \
  'Restart=on-failure' 'ExecStart=/usr/bin/countersign-agent run --config /etc/countersign-agent/agent.toml'; do
  grep -qx "$setting" "$unit" || fail "the unit lacks $setting"
done
"$WORK/root/usr/bin/countersign-agent" --version

# The example configuration's spool must lie in the unit's StateDirectory, the
# only place the unit lets the agent write.
grep -q '^spool_dir = "/var/lib/countersign-agent/' "$WORK/root/etc/countersign-agent/agent.toml" \
  || fail "the example spool_dir is outside /var/lib/countersign-agent"

if command -v systemd-analyze >/dev/null; then
  # Verify against the unpacked binary; verify needs ExecStart's path to exist.
  sed "s#/usr/bin/countersign-agent#$WORK/root/usr/bin/countersign-agent#" "$unit" \
    >"$WORK/countersign-agent.service"
  if ! systemd-analyze verify "$WORK/countersign-agent.service" 2>&1 | tee "$WORK/verify"; then
    fail "systemd-analyze verify"
  fi
  # Without a running systemd, verify may only warn; unknown settings are errors.
  if grep -E 'Unknown (key|section)|Failed to parse|Invalid' "$WORK/verify"; then
    fail "systemd-analyze verify"
  fi
  systemd-analyze security --offline=true "$WORK/countersign-agent.service" 2>/dev/null | tail -n1 || true
else
  echo "systemd-analyze not installed; unit not verified"
fi
echo "package checks passed in $((SECONDS - START)) s: $DEB"
