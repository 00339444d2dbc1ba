# Shared by the study scripts (tools/longtail_study.sh, tools/prior_study.sh); source it.
# study_sweep OUT_FOLDER ARGS...: expand OUT_FOLDER's store, run the sweep (WORKERS workers,
# default 2), pack the finished runs back; the sweep's exit status is returned after the pack.
# variants 'V1, V2': the sweep.variants override of those variants (newlines dropped).
study_sweep() {
  local out=$1 status=0
  shift
  mkdir -p "$out"
  if [ -f "$out/runs.jsonl.gz" ]; then $CLI results expand "$out/runs.jsonl.gz"; fi
  $CLI sweep "$@" --workers "${WORKERS:-2}" --out "$out" || status=$?
  if compgen -G "$out/*/result.json" >/dev/null; then $CLI results pack "$out"; fi
  return $status
}
variants() { echo "sweep.variants=[$(tr -d '\n' <<<"$1")]"; }
