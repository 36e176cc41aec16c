#!/usr/bin/env bash
# A real local Ray head for testing jobs before paying for a cluster:
#   cluster/local.sh up     start it (loopback only, token auth) and print the RAY_ADDRESS to use
#   cluster/local.sh down   stop exactly the head that `up` started, nothing else
#
# Environment (all optional): RAY_PORT (GCS, default 6380), DASHBOARD_PORT (dashboard and job server,
# default 8265), RAY_CLIENT_PORT and DASHBOARD_AGENT_PORT (default: free ports), NUM_CPUS
# (default: all), TEXTCLF_CLUSTER_DIR (state folder, default .cluster in the repo),
# RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH (the token; default ~/.ray/auth_token, created if missing).
#
# Other Ray instances on the machine are never touched: no `ray stop` (it kills every Ray process of
# the user). `up` runs `ray start --block` in the background and records its pid and its private
# --temp-dir; `down` signals that pid (Ray then stops the processes it started) and kills, by pid,
# whatever is left in its process group or names that temp dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${TEXTCLF_CLUSTER_DIR:-$ROOT/.cluster}
RAY=$ROOT/.venv/bin/ray
RAY_PORT=${RAY_PORT:-6380}
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
# Internal ports default to free ones: Ray's fixed defaults (10001, 52365) are often held by another
# Ray on the machine, and an agent that cannot bind its port silently disables job submission.
free_port() { "$ROOT/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# pids of what `up` started: its process group (setsid made the recorded pid the group leader, and
# Ray's processes and workers stay in it) plus anything whose command line names our temp dir
ours() {
    local pid=$1 dir=$2 p
    ps -eo pid=,pgid= | awk -v g="$pid" '$2 == g && $1 != g {print $1}'
    for p in /proc/[0-9]*; do
        if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$dir"; then echo "${p#/proc/}"; fi
    done | grep -vx "$$" || true
}

print_usage_hint() {
    echo "Ray head on 127.0.0.1 (GCS $(cat "$STATE/gcs_address"), dashboard $(cat "$STATE/address"))"
    echo "For ray job submit / logs / status (clients send the token only with RAY_AUTH_MODE=token):"
    echo "  export RAY_AUTH_MODE=token RAY_ADDRESS=$(cat "$STATE/address")"
    echo "textclf --address (a driver on this machine) takes the GCS address: $(cat "$STATE/gcs_address")"
}

up() {
    [[ -x $RAY ]] || { echo "no $RAY: run 'make install' first" >&2; exit 2; }
    mkdir -p "$STATE"
    if alive "$(cat "$STATE/pid" 2>/dev/null)"; then
        echo "already running (pid $(cat "$STATE/pid"))"
        print_usage_hint
        return
    fi
    [[ -e $STATE/pid ]] && down >/dev/null  # a head that died: clear what it left
    # Token auth: the job server refuses requests without the token. Clients on this machine find
    # it in the same place (~/.ray/auth_token, or the RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH given).
    if [[ -z ${RAY_AUTH_TOKEN:-} && -z ${RAY_AUTH_TOKEN_PATH:-} ]]; then
        "$RAY" get-auth-token --generate >/dev/null 2>&1
    fi
    # Private and short: Ray puts unix sockets under it (108-byte path limit), and `down` finds
    # leftover processes by it.
    local tmp
    tmp=$(mktemp -d /tmp/textclf-ray.XXXXXX)
    echo "$tmp" >"$STATE/temp_dir"
    echo "http://127.0.0.1:$DASHBOARD_PORT" >"$STATE/address"
    echo "127.0.0.1:$RAY_PORT" >"$STATE/gcs_address"
    RAY_CLIENT_PORT=${RAY_CLIENT_PORT:-$(free_port)}
    DASHBOARD_AGENT_PORT=${DASHBOARD_AGENT_PORT:-$(free_port)}
    local cpus=()
    [[ -n ${NUM_CPUS:-} ]] && cpus=(--num-cpus "$NUM_CPUS")
    # PATH: job entrypoints run `python`, which must be this venv's (textclf's dependencies).
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: without it Ray swaps 127.0.0.1 for the machine's external
    # IP and binds GCS, raylet and workers on every interface (see textclf/runtime/ray_session.py).
    # RAY_API_SERVER_ADDRESS: Ray Train's state-API calls go to this head even when other Ray
    # instances run on the machine. Drain timeout 0: a local head has nothing to drain on `down`.
    # setsid + nohup: the head outlives the shell (or make) that started it.
    PATH="$ROOT/.venv/bin:$PATH" \
    RAY_AUTH_MODE=token \
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 \
    RAY_USAGE_STATS_ENABLED=0 \
    RAY_API_SERVER_ADDRESS="http://127.0.0.1:$DASHBOARD_PORT" \
    RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 \
    setsid nohup "$RAY" start --head --block \
        --node-ip-address 127.0.0.1 --port "$RAY_PORT" \
        --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
        --ray-client-server-port "$RAY_CLIENT_PORT" --dashboard-agent-listen-port "$DASHBOARD_AGENT_PORT" \
        --temp-dir "$tmp" --disable-usage-stats "${cpus[@]}" \
        >"$STATE/ray-start.log" 2>&1 </dev/null &
    echo $! >"$STATE/pid"
    # Ready when the job server answers an authenticated request.
    local deadline=$((SECONDS + ${CLUSTER_UP_TIMEOUT:-180}))
    until RAY_AUTH_MODE=token "$RAY" job list --address "http://127.0.0.1:$DASHBOARD_PORT" >/dev/null 2>&1; do
        if ! alive "$(cat "$STATE/pid")" || ((SECONDS > deadline)); then
            echo "Ray head did not come up; last lines of $STATE/ray-start.log:" >&2
            tail -n 20 "$STATE/ray-start.log" >&2
            down >/dev/null 2>&1 || true
            exit 1
        fi
        sleep 2
    done
    print_usage_hint
}

down() {
    local pid tmp
    pid=$(cat "$STATE/pid" 2>/dev/null || true)
    tmp=$(cat "$STATE/temp_dir" 2>/dev/null || true)
    if [[ -z $pid && -z $tmp ]]; then
        echo "no local head recorded under $STATE"
        return
    fi
    if alive "$pid"; then
        kill -TERM "$pid"  # `ray start --block` stops the processes it started, then exits
        for _ in $(seq 60); do alive "$pid" || break; sleep 0.5; done
        alive "$pid" && kill -KILL "$pid"
    fi
    if [[ $pid =~ ^[0-9]+$ && $tmp == /tmp/textclf-ray.* ]]; then
        local left
        left=$(ours "$pid" "$tmp" | sort -u)
        if [[ -n $left ]]; then
            kill -TERM $left 2>/dev/null || true
            sleep 3
            left=$(ours "$pid" "$tmp" | sort -u)
            [[ -n $left ]] && kill -KILL $left 2>/dev/null || true
            sleep 1
        fi
        left=$(ours "$pid" "$tmp" | sort -u)
        if [[ -n $left ]]; then
            echo "still running: $left" >&2
            exit 1
        fi
        rm -rf "$tmp"
    fi
    rm -f "$STATE/pid" "$STATE/temp_dir" "$STATE/address" "$STATE/gcs_address"
    echo "local Ray head stopped"
}

case ${1:-} in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
