#!/usr/bin/env bash
# Runs every benchmark and writes BENCHMARKS.md: a summary with one row per
# target (our figure, its baseline measured in the same run, the ratio, the
# goal, met or not, the command; rows in scripts/bench-targets.txt), the
# machine, each package's notes (bench/<pkg>.md) and a table of every figure.
#
# 1. `go test -bench` in every package with benchmarks (ratios against
#    baselines measured in the same process).
# 2. bench/e2e/cmd/e2ebench: real logd vs rsyslogd (installed here when root
#    and missing) vs raw TCP relaying 200-byte events to a file, and tail -F
#    vs logtail latency at 10k events/s. Every process it starts is stopped.
#
# Knobs: BENCHTIME (default 1s), PKGS (packages to run), BENCH_QUICK=1 (one
# iteration per benchmark and small e2e counts: a smoke run), PROFILE=1
# (CPU and heap profiles under bench/profiles/, with `go tool pprof -top`
# summaries), NO_E2E=1 (skip step 2), PKG_TIMEOUT (per package, default 8m),
# REPORT_ONLY=1 (rewrite BENCHMARKS.md from the last run's bench/out/, e.g.
# after editing a bench/*.md note, without running anything).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${BENCH_QUICK:-0}
benchtime=${BENCHTIME:-1s}
e2eargs=""
if [ "$quick" = 1 ]; then
	benchtime=${BENCHTIME:-1x}
	e2eargs=" -quick"
fi
pkgs=${PKGS:-$(go list ./... | sed 's|github.com/logmesh/logmesh|.|')}
out=bench/out
mkdir -p "$out"
# run_suite runs the benchmarks into $out/all.txt and records the run's
# facts in $out/run.env.
run_suite() {
	: >"$out/all.txt"
	: >"$out/failed.txt"
	load0=$(cut -d' ' -f1-3 /proc/loadavg)
	t0=$(date +%s)
	for p in $pkgs; do
		grep -qsE '^func Benchmark' "$p"/*_test.go || continue
		name=$(basename "$p")
		args=(-run '^$' -bench . -benchmem -count 1 -benchtime "$benchtime" -timeout "${PKG_TIMEOUT:-8m}")
		if [ "${PROFILE:-0}" = 1 ]; then
			mkdir -p bench/profiles
			args+=(-cpuprofile "bench/profiles/$name.cpu" -memprofile "bench/profiles/$name.mem" -o "bench/profiles/$name.test")
		fi
		echo "bench: $p ($(( $(date +%s) - t0 ))s into the suite)" >&2
		# A failed package is reported in BENCHMARKS.md; the suite goes on.
		if ! go test "${args[@]}" "$p" >"$out/$name.txt" 2>&1; then
			echo "$p" >>"$out/failed.txt"
		fi
		cat "$out/$name.txt" >&2
		cat "$out/$name.txt" >>"$out/all.txt"
	done

	if [ "${NO_E2E:-0}" != 1 ]; then
		if ! command -v rsyslogd >/dev/null && [ ! -x /usr/sbin/rsyslogd ]; then
			./scripts/install-deps.sh rsyslog || echo "bench: rsyslog not installed; its rows stay empty" >&2
		fi
		eargs=($e2eargs)
		if [ "${PROFILE:-0}" = 1 ]; then
			eargs+=(-profile bench/profiles/e2e)
			e2eargs="$e2eargs -profile bench/profiles/e2e"
		fi
		echo "bench: ./bench/e2e/cmd/e2ebench${e2eargs} ($(( $(date +%s) - t0 ))s into the suite)" >&2
		go build -o "$out/e2ebench" ./bench/e2e/cmd/e2ebench
		# e2ebench stops its children on SIGTERM, and they die with it (Pdeathsig).
		if ! timeout -k 10s 10m "$out/e2ebench" "${eargs[@]}" >"$out/e2e.txt"; then
			echo "bench/e2e" >>"$out/failed.txt"
		fi
		cat "$out/e2e.txt" >&2
		cat "$out/e2e.txt" >>"$out/all.txt"
	fi

	if [ "${PROFILE:-0}" = 1 ]; then
		for f in bench/profiles/*.cpu bench/profiles/*.mem bench/profiles/e2e/*.cpu bench/profiles/e2e/*.mem; do
			[ -s "$f" ] || continue
			sample=()
			case "$f" in *.mem) sample=(-sample_index=alloc_space) ;; esac
			go tool pprof -top -nodecount=25 "${sample[@]}" "$f" >"$f.top.txt" 2>/dev/null || true
		done
		echo "bench: profiles and their pprof -top summaries in bench/profiles/" >&2
	fi

	secs=$(( $(date +%s) - t0 ))
	load1=$(cut -d' ' -f1-3 /proc/loadavg)
	day=$(date -u +%Y-%m-%d)
	cmd="make bench"
	[ "$quick" = 1 ] && cmd="BENCH_QUICK=1 $cmd"
	[ "${PROFILE:-0}" = 1 ] && cmd="PROFILE=1 $cmd"
	[ "${NO_E2E:-0}" = 1 ] && cmd="NO_E2E=1 $cmd"
	[ -n "${PKGS:-}" ] && cmd="PKGS='$PKGS' $cmd"
	[ -n "${BENCHTIME:-}" ] && cmd="BENCHTIME=$BENCHTIME $cmd"
	declare -p benchtime e2eargs secs load0 load1 day cmd >"$out/run.env"
}

if [ "${REPORT_ONLY:-0}" = 1 ]; then
	[ -s "$out/run.env" ] || { echo "bench: no previous run in $out/: run make bench first" >&2; exit 1; }
	# shellcheck source=/dev/null
	. "$out/run.env"
else
	run_suite
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
{
	echo "# Benchmarks"
	echo
	echo "Produced by \`$cmd\` (scripts/bench.sh, BENCHTIME=$benchtime) on $day in ${secs}s:"
	echo "$(nproc) cores ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)."
	echo "Load average (1, 5, 15 min) at start: $load0; at end: $load1 — the machine is shared, so"
	echo "absolute rates vary from run to run; the ratios compare with a baseline measured in the same run."
	echo
	echo "## Summary: targets"
	echo
	awk -v benchtime="$benchtime" -v e2eargs="$e2eargs" -f scripts/bench-summary.awk scripts/bench-targets.txt "$out/all.txt"
	echo
	if [ -s "$out/failed.txt" ]; then
		echo "**Failed in this run** (see bench/out/): $(paste -sd' ' "$out/failed.txt")"
		echo
		awk '/^--- FAIL/ {f = 1; print "    " $0; next} f && /^    / {print "    " $0; next} {f = 0}' "$out/all.txt"
		echo
	fi
	echo "\"not measured\": the benchmark did not run or did not report that metric in this run."
	echo
	for f in bench/*.md; do
		[ -f "$f" ] || continue
		sed 's/^\(#\{1,5\}\) /#\1 /' "$f"
		echo
	done
	echo "## All figures of this run"
	echo
	echo '| package | benchmark | iterations | figures |'
	echo '|---|---|---|---|'
	awk '/^pkg: / {pkg=$2; sub(".*/", "", pkg)}
	     /^Benchmark/ && NF > 3 {name=$1; it=$2; figs=""
	       for (i = 3; i < NF; i += 2) figs = figs (figs ? ", " : "") $i " " $(i+1)
	       printf "| %s | %s | %s | %s |\n", pkg, name, it, figs}' "$out/all.txt"
} >BENCHMARKS.md
echo "bench: wrote BENCHMARKS.md in ${secs}s" >&2
