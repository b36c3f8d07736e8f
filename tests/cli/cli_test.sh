#!/usr/bin/env bash
# The luoshu binary on bad input: a clear message, a non-zero exit, no crash.
#   cli_test.sh PATH/TO/luoshu
set -u
luoshu=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect CODE PATTERN -- ARGS...: run, check exit code and that output matches.
expect() {
  local code=$1 pattern=$2
  shift 3
  local out rc
  out=$(timeout 60 "$luoshu" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: luoshu $* -> exit $rc (want $code), output:"
    echo "$out" | sed 's/^/    /'
    echo "    (wanted a match for: $pattern)"
    fails=$((fails + 1))
  else
    echo "ok: luoshu $* -> exit $rc"
  fi
}

cat > "$tmp/bad_op.yaml" <<'YAML'
model:
  input: [4]
  layers: [{op: linear, units: 3}, {op: rellu}, {op: linear, units: 2}]
data: {format: csv, train: data.csv}
YAML
cat > "$tmp/missing_data.yaml" <<'YAML'
model:
  input: [4]
  layers: [{op: linear, units: 2}]
data: {format: csv, train: /nonexistent/data.csv}
YAML
printf '1,2,3,4,0\n5,6,7,x,1\n' > "$tmp/corrupt.csv"
cat > "$tmp/corrupt.yaml" <<YAML
model:
  input: [4]
  layers: [{op: linear, units: 2}]
data: {format: csv, train: $tmp/corrupt.csv}
YAML

expect 2 "unknown op 'rellu'.*known ops" -- train "$tmp/bad_op.yaml"
expect 2 "model.layers\[1\].op" -- train "$tmp/bad_op.yaml"
expect 2 "cannot open the configuration file" -- train "$tmp/nope.yaml"
expect 1 "/nonexistent/data.csv" -- train "$tmp/missing_data.yaml"
expect 1 "corrupt.csv.*line 2.*column 4" -- train "$tmp/corrupt.yaml"
expect 2 "expected key=value" -- train "$tmp/missing_data.yaml" --set broken
expect 2 "model.dtype" -- train "$tmp/missing_data.yaml" --set model.dtype=f16
expect 106 "required|config" -- train
expect 0 "wrote 300 rows to .*criteo.tsv: .*% positive, [0-9]+ distinct" -- gen criteo --rows 300 --out "$tmp/criteo.tsv" --distinct 1000
expect 106 "--out is required" -- gen criteo --rows 10
expect 1 "cannot write" -- gen criteo --rows 10 --out /nonexistent/c.tsv
sed '2s/\t[0-9a-f]*$/\tnot-hex/' "$tmp/criteo.tsv" > "$tmp/bad_criteo.tsv"
wide_deep="$(dirname "$0")/../../apps/examples/wide_deep_criteo.yaml"
expect 1 "bad_criteo.tsv: line 2: column 40 \(C26\): 'not-hex'" -- train "$wide_deep" \
  --set data.train="$tmp/bad_criteo.tsv" --set data.test=""
expect 0 "test AUC [0-9.]+, test log-loss [0-9.]+" -- train "$wide_deep" --set data.train="$tmp/criteo.tsv" \
  --set data.test="$tmp/criteo.tsv" --set data.buckets=5000 --set model.hidden=[8] --quiet
expect 0 "luoshu [0-9]" -- --version
expect 0 "CUDA devices: [0-9]" -- info

if [ "$fails" -ne 0 ]; then
  echo "$fails CLI check(s) failed"
  exit 1
fi
echo "all CLI checks passed"
