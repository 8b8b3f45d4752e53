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
