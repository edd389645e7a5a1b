#!/usr/bin/env bash
# x402-compute installer: fetch the skill bundle, verify its SHA-256, unpack it,
# create DIR/.venv with the pinned dependencies and run the bundle's self-check.
#
#   curl -fsSL <installer-url> | bash                  # installs into ./x402-compute
#   curl -fsSL <installer-url> | bash -s -- DIR [options]
#   bash install.sh [DIR] [options]
#
# Options (each also has an environment variable):
#   --url URL        release archive: https://, http:// (off this machine only with
#                    --sha256), file:// or a local path (X402_COMPUTE_ARCHIVE_URL)
#   --sha256 HEX     expected SHA-256 of the archive; by default it is read from
#                    <URL>.sha256 beside the archive (X402_COMPUTE_ARCHIVE_SHA256)
#   --python PATH    Python 3.10+ to build the virtual environment with
#                    (X402_COMPUTE_PYTHON; default: the first python3.x found)
#   --skip-check     do not run doctor.py at the end
#   -h, --help       this text
#
# Re-running upgrades in place: only the bundle's own entries (SKILL.md,
# requirements.txt, scripts/, references/) are replaced. Anything else in DIR
# (.env, your notes) and the state directory (~/.local/state/x402-compute) is kept;
# an archive carrying anything else, a link, or a path outside its folder is refused.
# Plain http:// (off this machine) needs --sha256: the checksum beside an archive
# fetched over plain http proves nothing. For tamper resistance, pin --sha256 with
# the value from a second channel (the release page) whatever the URL.
# No sudo; nothing is written outside DIR except a temporary folder beside it.

set -euo pipefail

DEFAULT_URL="https://github.com/x402-compute/x402-compute/releases/latest/download/x402-compute.tar.gz"
MARKER=".x402-compute-install"   # lists the top-level entries this installer owns in DIR
# The bundle's own top-level entries: the only names this installer ever writes or removes in DIR.
BUNDLE_ENTRIES="SKILL.md requirements.txt scripts references"

say() { printf 'x402-compute: %s\n' "$*" >&2; }
die() {
  # $1: what went wrong; $2: what to do about it
  printf '\nx402-compute install failed: %s\n' "$1" >&2
  [ -n "${2:-}" ] && printf 'What to do: %s\n' "$2" >&2
  exit 1
}

usage() {
  cat <<'EOF'
Install the x402-compute agent skill into DIR (default ./x402-compute).

  bash install.sh [DIR] [--url URL] [--sha256 HEX] [--python PATH] [--skip-check]
  curl -fsSL <installer-url> | bash -s -- [DIR] [options]

  --url URL       release archive: https://, http:// (needs --sha256 unless on this machine), file:// or a local path (X402_COMPUTE_ARCHIVE_URL)
  --sha256 HEX    expected SHA-256 of the archive; default: read <URL>.sha256 (X402_COMPUTE_ARCHIVE_SHA256)
  --python PATH   Python 3.10+ for the virtual environment (X402_COMPUTE_PYTHON)
  --skip-check    do not run doctor.py --offline at the end

Re-running upgrades in place and keeps your files in DIR (.env, notes) and the
state directory (~/.local/state/x402-compute).

A plain http:// URL to another machine needs --sha256. For tamper resistance, take
the --sha256 value from a second channel (the release page) rather than <URL>.sha256.
EOF
}

TMP=""
NEW_DIR=""   # set when this run created DIR, so a failed first install leaves nothing behind
cleanup() {
  [ -n "$TMP" ] && rm -rf -- "$TMP"
  if [ -n "$NEW_DIR" ] && [ ! -f "$NEW_DIR/$MARKER" ]; then rm -rf -- "$NEW_DIR"; fi
  return 0
}

find_python() {
  local want="${1:-}" cand
  if [ -n "$want" ]; then
    command -v "$want" >/dev/null 2>&1 || die "the Python you named ($want) was not found." \
      "Pass --python with the path of a Python 3.10 or newer."
    "$want" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null || die \
      "$want is not Python 3.10 or newer ($("$want" -V 2>&1 || echo unknown version))." \
      "Install Python 3.10+ (e.g. apt install python3, brew install python@3.12) and pass --python PATH."
    command -v "$want"
    return
  fi
  for cand in python3 python3.14 python3.13 python3.12 python3.11 python3.10 python; do
    if command -v "$cand" >/dev/null 2>&1 &&
      "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      command -v "$cand"
      return
    fi
  done
  die "Python 3.10 or newer was not found on PATH$(command -v python3 >/dev/null 2>&1 && printf ' (python3 is %s)' "$(python3 -V 2>&1)")." \
    "Install Python 3.10+ (Debian/Ubuntu: apt install python3 python3-venv; macOS: brew install python@3.12), or pass --python PATH."
}

# fetch SOURCE DEST: SOURCE is a URL (http, https, file) or a local path
fetch() {
  local src="$1" dest="$2"
  case "$src" in
    file://*) cp -- "${src#file://}" "$dest" 2>/dev/null ;;
    http://* | https://*)
      local proto="=http,https"
      case "$src" in https://*) proto="=https" ;; esac  # an https download never follows a redirect to http
      if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 2 --connect-timeout 20 --proto "$proto" --proto-redir "$proto" -o "$dest" -- "$src"
      elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$dest" -- "$src"
      else
        "$PY" - "$src" "$dest" <<'PYEOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())
PYEOF
      fi
      ;;
    *) cp -- "$src" "$dest" 2>/dev/null ;;
  esac
}

# parse_url URL: the one reading of a URL, by RFC 3986: sets URL_SCHEME (lower case), URL_USERINFO,
# URL_HOST (lower case, without IPv6 brackets) and URL_PORT; returns 1 with URL_ERROR when the URL is
# not one this installer can read the same way curl does (spaces, backslashes, control characters,
# a host that is neither a DNS name nor an IP literal, a port that is not 1-65535). The authority
# ends at the first "/", "?" or "#": "http://evil.invalid?@127.0.0.1/x" names the host evil.invalid,
# as curl reads it, never 127.0.0.1.
parse_url() {
  local url="$1" rest auth hostport
  URL_SCHEME="" URL_USERINFO="" URL_HOST="" URL_PORT="" URL_ERROR=""
  case "$url" in
    *[[:space:]]* | *\\* | *[[:cntrl:]]*) URL_ERROR="it contains a space, a backslash or a control character"; return 1 ;;
    *://*) ;;
    *) URL_ERROR="it is not scheme://host/path"; return 1 ;;
  esac
  URL_SCHEME=$(printf '%s' "${url%%://*}" | tr 'A-Z' 'a-z')
  case "$URL_SCHEME" in
    "" | *[!abcdefghijklmnopqrstuvwxyz0123456789+.-]*) URL_ERROR="its scheme is not a scheme"; return 1 ;;
  esac
  rest="${url#*://}"
  auth="${rest%%[/?#]*}"
  case "$auth" in
    *@*) URL_USERINFO="${auth%@*}"; hostport="${auth##*@}" ;;
    *) hostport="$auth" ;;
  esac
  case "$hostport" in
    \[*\]) URL_HOST="${hostport#\[}"; URL_HOST="${URL_HOST%\]}" ;;
    \[*\]:*) URL_HOST="${hostport%%\]*}"; URL_HOST="${URL_HOST#\[}"; URL_PORT="${hostport##*\]:}" ;;
    \[* | *\]*) URL_ERROR="its IPv6 address is not in matching brackets"; return 1 ;;
    *:*) URL_HOST="${hostport%%:*}"; URL_PORT="${hostport#*:}" ;;
    *) URL_HOST="$hostport" ;;
  esac
  URL_HOST=$(printf '%s' "$URL_HOST" | tr 'A-Z' 'a-z')
  case "$hostport" in
    \[*)
      case "$URL_HOST" in
        *:*) ;;
        *) URL_ERROR="its bracketed host is not an IPv6 address"; return 1 ;;
      esac
      case "$URL_HOST" in *[!0123456789abcdef:.]*) URL_ERROR="its bracketed host is not an IPv6 address"; return 1 ;; esac
      ;;
    *)
      case "$URL_HOST" in
        "" | .* | *..* | *[!abcdefghijklmnopqrstuvwxyz0123456789.-]*) URL_ERROR="its host is not a DNS name or an IP address"; return 1 ;;
      esac
      ;;
  esac
  if [ -n "$URL_PORT" ]; then
    case "$URL_PORT" in *[!0123456789]*) URL_ERROR="its port is not a number"; return 1 ;; esac
    if [ "${#URL_PORT}" -gt 5 ] || [ "$URL_PORT" -lt 1 ] || [ "$URL_PORT" -gt 65535 ]; then
      URL_ERROR="its port is not 1-65535"; return 1
    fi
  fi
  return 0
}

# is_loopback_host HOST (as parse_url left it): this machine by name or address (127.0.0.0/8, ::1,
# localhost). Other spellings curl may also take for loopback (0x7f.1, [::ffff:127.0.0.1]) are not:
# they need a pinned checksum, the safe side. Each part at most 255: "127.0.0.999" is no address,
# and curl would ask DNS for that name.
is_loopback_host() {
  local part
  case "$1" in
    localhost | ::1 | 0:0:0:0:0:0:0:1) return 0 ;;
  esac
  [[ "$1" =~ ^127(\.[0-9]{1,3}){1,3}$ ]] || return 1
  for part in ${1//./ }; do
    [ "$((10#$part))" -le 255 ] || return 1
  done
}

# check_archive FILE: fails, listing them, when the archive holds anything but the bundle's own entries
check_archive() {
  "$PY" - "$1" "$BUNDLE_ENTRIES" <<'PYEOF'
import sys, tarfile
allowed = set(sys.argv[2].split())
bad = []
try:
    with tarfile.open(sys.argv[1], "r:gz") as tar:
        for m in tar:
            name = m.name[2:] if m.name.startswith("./") else m.name
            parts = name.rstrip("/").split("/")
            if name.startswith("/") or ".." in parts or parts[0] != "x402-compute":
                bad.append(f"{m.name} (outside the x402-compute folder)")
            elif not (m.isfile() or m.isdir()):
                bad.append(f"{m.name} (a link or special file)")
            elif len(parts) > 1 and parts[1] not in allowed:
                bad.append(f"{m.name} (not part of the bundle)")
except (tarfile.TarError, OSError, EOFError) as e:
    bad.append(f"unreadable archive: {e}")
print("\n".join(bad[:20]))
sys.exit(1 if bad else 0)
PYEOF
}

sha256_of() {
  "$PY" -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())' "$1"
}

main() {
  local dir="" url="${X402_COMPUTE_ARCHIVE_URL:-}" sum="${X402_COMPUTE_ARCHIVE_SHA256:-}"
  local python="${X402_COMPUTE_PYTHON:-}" check=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --url) [ $# -ge 2 ] || die "--url needs a value." "Pass --url URL."; url="$2"; shift 2 ;;
      --url=*) url="${1#*=}"; shift ;;
      --sha256) [ $# -ge 2 ] || die "--sha256 needs a value." "Pass --sha256 HEX."; sum="$2"; shift 2 ;;
      --sha256=*) sum="${1#*=}"; shift ;;
      --python) [ $# -ge 2 ] || die "--python needs a value." "Pass --python PATH."; python="$2"; shift 2 ;;
      --python=*) python="${1#*=}"; shift ;;
      --skip-check) check=0; shift ;;
      -h | --help) usage; exit 0 ;;
      --) shift; [ $# -gt 0 ] && { dir="$1"; shift; } ;;
      -*) die "unknown option $1." "Run: bash install.sh --help" ;;
      *) [ -z "$dir" ] || die "more than one target directory given ($dir, $1)." "Pass one DIR."; dir="$1"; shift ;;
    esac
  done
  dir="${dir:-./x402-compute}"
  url="${url:-$DEFAULT_URL}"
  case "$url" in
    [Hh][Tt][Tt][Pp]://* | [Hh][Tt][Tt][Pp][Ss]://*)
      parse_url "$url" || die "refusing the URL $url: $URL_ERROR." "Pass the release archive's plain https:// URL."
      [ -z "$URL_USERINFO" ] || die "refusing the URL $url: it carries user information before an @, which hides the real host." \
        "Pass the release archive's URL without a user name or password (https://host/path)."
      ;;
  esac
  case "$url" in
    [Hh][Tt][Tt][Pp]://*)
      if ! is_loopback_host "$URL_HOST" && [ -z "$sum" ]; then
        die "refusing to download $url over plain http without a pinned checksum: anyone on the way could replace both the archive and its .sha256." \
          "Use the https:// URL, or pass --sha256 HEX with the checksum from a second channel (the release page over https)."
      fi
      ;;
  esac

  PY=$(find_python "$python")
  say "using $("$PY" -V 2>&1) at $PY"
  "$PY" -c 'import venv, ensurepip' 2>/dev/null || die \
    "this Python has no working venv module (venv/ensurepip missing)." \
    "On Debian/Ubuntu ask an administrator to run: apt install python3-venv (or python3.X-venv for your version); then re-run this installer."

  # Absolute target path; refuse a non-empty folder that is not ours, so a typo
  # like DIR=~ can never replace somebody's scripts/ folder.
  mkdir -p -- "$(dirname -- "$dir")" || die "cannot create the parent of $dir." "Choose a DIR you can write to."
  dir="$(cd -- "$(dirname -- "$dir")" && pwd)/$(basename -- "$dir")"
  local upgrade=0
  if [ -e "$dir" ]; then
    [ -d "$dir" ] || die "$dir exists and is not a directory." "Choose another DIR."
    if [ -f "$dir/$MARKER" ] || grep -qs '^name: x402-compute$' "$dir/SKILL.md"; then
      upgrade=1
    elif [ -n "$(ls -A -- "$dir")" ]; then
      die "$dir is not empty and does not hold an x402-compute install." "Pass an empty or new DIR (e.g. bash install.sh ./x402-compute)."
    fi
  fi

  local parent tmp
  parent=$(dirname -- "$dir")
  # beside DIR, so the final moves stay on one filesystem
  TMP=$(mktemp -d "$parent/.x402-compute-install.XXXXXX") || die "cannot create a temporary folder in $parent." "Make $parent writable or choose another DIR."
  tmp="$TMP"
  trap cleanup EXIT

  say "downloading $url"
  fetch "$url" "$tmp/bundle.tar.gz" || die "could not download $url." \
    "Check the URL and your network or proxy (HTTPS_PROXY), then re-run. A local file works too: --url /path/to/x402-compute-<version>.tar.gz"

  if [ -z "$sum" ]; then
    fetch "$url.sha256" "$tmp/bundle.sha256" || die "no published checksum at $url.sha256; refusing to install unverified code." \
      "Pass the SHA-256 from the release page with --sha256 HEX (or X402_COMPUTE_ARCHIVE_SHA256)."
    sum=$(awk 'NR == 1 { print $1 }' "$tmp/bundle.sha256")
  fi
  sum=$(printf '%s' "$sum" | tr 'A-F' 'a-f')
  case "$sum" in
    *[!0-9a-f]* | "") die "the expected checksum '$sum' is not a SHA-256 (64 hex characters)." "Pass the right value with --sha256." ;;
  esac
  [ ${#sum} -eq 64 ] || die "the expected checksum '$sum' is not a SHA-256 (64 hex characters)." "Pass the right value with --sha256."
  local got
  got=$(sha256_of "$tmp/bundle.tar.gz")
  [ "$got" = "$sum" ] || die "checksum mismatch for $url: expected $sum, got $got. The download is damaged or was tampered with; nothing was installed." \
    "Re-run the installer to download again. If it keeps failing, do not install: report it."
  say "checksum ok ($got)"

  local foreign
  foreign=$(check_archive "$tmp/bundle.tar.gz") || die "the archive holds entries that are not the x402-compute bundle; nothing was installed:
$foreign" "Check --url: it must point at an x402-compute release archive. Do not install an archive that carries other files."
  mkdir "$tmp/new"
  tar --no-same-owner -xzf "$tmp/bundle.tar.gz" -C "$tmp/new" 2>/dev/null || die "the archive could not be unpacked." "Re-run the installer; if it persists, report it."
  local src="$tmp/new/x402-compute"
  [ -f "$src/SKILL.md" ] && [ -f "$src/requirements.txt" ] && [ -d "$src/scripts" ] ||
    die "the archive does not contain an x402-compute bundle (x402-compute/SKILL.md, scripts/)." "Check --url: it must point at an x402-compute release archive."

  if [ ! -d "$dir" ]; then
    mkdir -p -- "$dir"
    NEW_DIR="$dir"
  fi

  # Dependencies first, from the new requirements, so a failed pip run leaves a
  # previous install's code untouched.
  local vpy="$dir/.venv/bin/python"
  if [ -x "$vpy" ] && "$vpy" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    say "reusing the virtual environment $dir/.venv"
  else
    [ -e "$dir/.venv" ] && mv -- "$dir/.venv" "$tmp/old-venv"
    say "creating the virtual environment $dir/.venv"
    "$PY" -m venv "$dir/.venv" || die "could not create a virtual environment in $dir/.venv." \
      "On Debian/Ubuntu ask an administrator to run: apt install python3-venv; then re-run this installer."
  fi
  say "installing dependencies (requirements.txt)"
  "$vpy" -m pip install --disable-pip-version-check --quiet -r "$src/requirements.txt" ||
    die "pip could not install the dependencies (see pip's messages above)." \
      "Check your network, proxy or package index settings (PIP_INDEX_URL), then re-run this installer; it is safe to re-run."

  # Swap in the code: each top-level entry of the bundle replaces its old copy;
  # entries a previous version installed and this one dropped are removed.
  local name path
  mkdir "$tmp/old"
  if [ -f "$dir/$MARKER" ]; then
    while IFS= read -r name; do
      case " $BUNDLE_ENTRIES " in *" $name "*) ;; *) continue ;; esac  # never a user's file, whatever the marker says
      [ -e "$src/$name" ] || { [ -e "$dir/$name" ] && mv -- "$dir/$name" "$tmp/old/$name"; } || true
    done <"$dir/$MARKER"
  fi
  : >"$tmp/marker"
  for name in $BUNDLE_ENTRIES; do
    [ -e "$src/$name" ] || continue
    if [ -e "$dir/$name" ] || [ -L "$dir/$name" ]; then
      mv -- "$dir/$name" "$tmp/old/$name"
    fi
    mv -- "$src/$name" "$dir/$name"
    printf '%s\n' "$name" >>"$tmp/marker"
  done
  mv -- "$tmp/marker" "$dir/$MARKER"

  local version
  version=$("$vpy" -c 'import sys; sys.path.insert(0, sys.argv[1]); import x402_compute; print(x402_compute.__version__)' "$dir/scripts" 2>/dev/null || echo "?")
  if [ "$upgrade" = 1 ]; then say "upgraded $dir to x402-compute $version"; else say "installed x402-compute $version in $dir"; fi

  if [ "$check" = 1 ]; then
    say "self-check (doctor.py --offline):"
    if ! "$vpy" "$dir/scripts/doctor.py" --offline --output text >&2; then
      die "the files are installed, but the self-check found problems (listed above)." \
        "Fix what the failed checks say, then run: $vpy $dir/scripts/doctor.py"
    fi
  fi

  cat >&2 <<EOF

Done. Try it:
  $vpy $dir/scripts/browse_plans.py --limit 5 -o text
  $vpy $dir/scripts/doctor.py            # includes the API and clock checks
Configure a wallet or API key through environment variables (see $dir/SKILL.md);
for an agent host, put or link $dir in its skills folder (e.g. ~/.openclaw/skills/x402-compute).
EOF
}

main "$@"
