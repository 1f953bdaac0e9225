#!/bin/sh
# One-shot: once the Temporal frontend is healthy, create the namespace revops runs in (if it is
# missing) and register the search attributes its workflows set (REVOPS_SEARCH_ATTRIBUTES, all
# Keyword: opaque ids and stage names only). Runs in the temporalio/admin-tools image (the
# `temporal` CLI ships there). Idempotent.
set -eu

tries=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "Temporal at $TEMPORAL_ADDRESS did not become healthy"
    exit 1
  fi
  sleep 2
done

ns="$REVOPS_TEMPORAL_NAMESPACE"
temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$ns" >/dev/null 2>&1 ||
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$ns" --retention 720h

existing=$(temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$ns")
for name in $REVOPS_SEARCH_ATTRIBUTES; do
  if echo "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace "$ns" \
      --name "$name" --type Keyword
  fi
done
echo "namespace $ns and its search attributes are ready"
