# Shared by the scripts in this folder: set-up steps that are safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STATE="$ROOT/.runner"
REDIS_MAXMEMORY="${REDIS_MAXMEMORY:-4gb}"  # the local Redis (tests, benchmarks, a one-host fleet)
mkdir -p "$STATE"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the project needs, as WHAT:PACKAGE where WHAT is a command or an absolute
# path the package provides; installed only when missing, and only as root.
need_packages() {
  local missing=()
  for spec in "$@"; do
    local what="${spec%%:*}" pkg="${spec##*:}"
    case "$what" in
      /*) [ -e "$what" ] || missing+=("$pkg") ;;
      *) command -v "$what" >/dev/null 2>&1 || [ -x "/usr/sbin/$what" ] || missing+=("$pkg") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}): install them or run as root"
  say "installing Debian packages: ${missing[*]}"
  if [ ! -f "$STATE/apt-updated" ]; then apt-get update -qq; touch "$STATE/apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

DOCKER=/usr/bin/docker
ensure_docker() {
  need_packages dockerd:docker.io debootstrap:debootstrap
  [ -x "$DOCKER" ] || DOCKER="$(command -v docker)"
  if ! "$DOCKER" info >/dev/null 2>&1; then
    say "starting the Docker engine"
    if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
      systemctl start docker
    else
      # setsid -f: the engine is nobody's child (init reaps it), so whoever stops it sees it
      # gone, not a zombie of the shell that started it, or of the program exec'ed after
      # from /: a daemon keeps its working directory, which a checkout's removal must not take
      (cd / && setsid -f dockerd </dev/null >>/var/log/runner-dockerd.log 2>&1)
    fi
    for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 0.5; done
    "$DOCKER" info >/dev/null 2>&1 || die "the Docker engine did not start: see /var/log/runner-dockerd.log"
  fi
}

ensure_redis() {
  need_packages redis-server:redis-server
  if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
    say "starting Redis on 127.0.0.1:6379"
    # noeviction: an evicted chord key would lose results.
    redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
      --maxmemory-policy noeviction --maxmemory "$REDIS_MAXMEMORY" \
      --logfile /var/log/runner-redis.log
    for _ in $(seq 40); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.25; done
    redis-cli -p 6379 ping >/dev/null 2>&1 || die "Redis did not start: see /var/log/runner-redis.log"
  fi
  # a Redis started before (or by someone else) without a ceiling gets ours: admission refuses
  # new work near maxmemory, which it cannot do without one
  if [ "$(redis-cli -p 6379 config get maxmemory | sed -n 2p)" = "0" ]; then
    redis-cli -p 6379 config set maxmemory "$REDIS_MAXMEMORY" >/dev/null
  fi
}

ensure_venv() {
  local stamp="$VENV/.installed" want
  want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment in .venv"
    python3 -m venv "$VENV" || { need_packages python3:python3-venv; python3 -m venv "$VENV"; }
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python dependencies"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[dev,api]"
    echo "$want" >"$stamp"
  fi
}

ensure_images() {
  say "building the sandbox images (skips what is up to date)"
  "$VENV/bin/python" -m worker.images build "$@"
}

# The fleet's image registry (Debian's docker-registry, 2.8), as a daemon of this host:
# scripts/build-images --push fills it, workers where images are missing pull from it
# (RUNNER_REGISTRY). FLEET_REGISTRY_ADDR is where it listens (default 127.0.0.1:5000, which
# the engine treats as an insecure registry by itself); its blobs and files live in
# FLEET_REGISTRY_DIR. (FLEET_ names: docker-registry reads every REGISTRY_* variable as its
# configuration.) Anywhere but loopback, or with FLEET_REGISTRY_AUTH=htpasswd, it asks for a
# user (FLEET_REGISTRY_USER, default runner) and the password in FLEET_REGISTRY_PASSWORD_FILE
# (default FLEET_REGISTRY_DIR/password, made at random on first start, mode 600), which is
# never printed nor put on a command line. Other hosts' engines need the registry in their
# "insecure-registries" or a TLS certificate (REGISTRY_HTTP_TLS_CERTIFICATE and _KEY in the
# environment reach docker-registry as they are).
FLEET_REGISTRY_ADDR="${FLEET_REGISTRY_ADDR:-127.0.0.1:5000}"
FLEET_REGISTRY_DIR="${FLEET_REGISTRY_DIR:-/var/lib/runner-registry}"
FLEET_REGISTRY_USER="${FLEET_REGISTRY_USER:-runner}"
registry_needs_auth() {
  case "${FLEET_REGISTRY_AUTH:-}" in
    htpasswd) return 0 ;;
    none) return 1 ;;
  esac
  case "${FLEET_REGISTRY_ADDR%:*}" in 127.* | localhost) return 1 ;; *) return 0 ;; esac
}
registry_up() {  # the API answers (401 counts: it is up, and asks for the password)
  local code
  code="$(python3 - "http://$FLEET_REGISTRY_ADDR/v2/" <<'PY'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except Exception:
    print(0)
PY
)"
  [ "$code" = 200 ] || [ "$code" = 401 ]
}
# registry_htpasswd FILE: FLEET_REGISTRY_USER's entry, bcrypt (the only scheme docker-registry
# reads), from FLEET_REGISTRY_PASSWORD_FILE, made at random when missing; the password goes
# through stdin, never a command line.
registry_htpasswd() {
  local secret="${FLEET_REGISTRY_PASSWORD_FILE:-$FLEET_REGISTRY_DIR/password}"
  mkdir -p "$(dirname "$secret")" "$(dirname "$1")"
  if [ ! -s "$secret" ]; then
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$secret")
  fi
  (umask 077 && python3 -W ignore -c '
import crypt, sys
user, password = sys.argv[1], sys.stdin.readline().strip()
print(f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}")
' "$FLEET_REGISTRY_USER" <"$secret" >"$1")
}
ensure_registry() {
  need_packages docker-registry:docker-registry
  registry_up && return 0
  say "starting the image registry on $FLEET_REGISTRY_ADDR (data in $FLEET_REGISTRY_DIR)"
  mkdir -p "$FLEET_REGISTRY_DIR/data"
  chmod 700 "$FLEET_REGISTRY_DIR"
  local auth=""
  if registry_needs_auth; then
    registry_htpasswd "$FLEET_REGISTRY_DIR/htpasswd"
    auth="auth:
  htpasswd:
    realm: runner-registry
    path: $FLEET_REGISTRY_DIR/htpasswd"
  fi
  cat >"$FLEET_REGISTRY_DIR/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $FLEET_REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $FLEET_REGISTRY_ADDR
$auth
YML
  # its pid in FLEET_REGISTRY_DIR/pid, for stop_registry
  (cd / && setsid -f sh -c 'echo $$ >"$1/pid"; exec /usr/bin/docker-registry serve "$1/config.yml"' \
    sh "$FLEET_REGISTRY_DIR" </dev/null >>"$FLEET_REGISTRY_DIR/registry.log" 2>&1)
  for _ in $(seq 40); do registry_up && break; sleep 0.25; done
  registry_up || die "the registry did not start: see $FLEET_REGISTRY_DIR/registry.log"
}
stop_registry() {  # the one ensure_registry started with this FLEET_REGISTRY_DIR (its blobs stay)
  local pid
  pid="$(cat "$FLEET_REGISTRY_DIR/pid" 2>/dev/null)" || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  rm -f "$FLEET_REGISTRY_DIR/pid"
}
