#!/usr/bin/env bash
# Starts the binary with no configuration in an empty directory and plays the
# README's grpcurl session: list, mint a token, create an organisation, add a
# person, list people. Needs grpcurl on PATH.
set -euo pipefail
[ -x "$1" ] || { echo "no jalon binary at $1" >&2; exit 1; }
jalon="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
dir="$(mktemp -d)"
port=50651
cd "$dir"
"$jalon" serve --listen "127.0.0.1:$port" >serve.out 2>serve.log &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do
  grpcurl -plaintext "localhost:$port" list >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "jalon serve exited:" >&2; cat serve.log >&2; exit 1; }
  sleep 0.2
done

grpcurl -plaintext "localhost:$port" list | tee list.txt
grep -q jalon.v1.OrganisationService list.txt
grep -q jalon.v1.PersonService list.txt

TOKEN="$("$jalon" token --subject dev-admin)"
auth=(-H "authorization: Bearer $TOKEN")
org_id="$(grpcurl -plaintext "${auth[@]}" -d '{
  "organisation": {"display_name": "Acme", "slug": "acme", "default_currency": "EUR", "discount_rate": "0.08"},
  "initial_admin": {"subject": "dev-admin", "email": "ada@acme.example", "display_name": "Ada Admin"}
}' "localhost:$port" jalon.v1.OrganisationService/CreateOrganisation | python3 -c 'import json,sys; print(json.load(sys.stdin)["organisation"]["id"])')"
grpcurl -plaintext "${auth[@]}" -d "{
  \"organisation_id\": \"$org_id\",
  \"person\": {\"subject\": \"grace\", \"email\": \"grace@acme.example\", \"display_name\": \"Grace Sponsor\", \"role\": \"ROLE_MEMBER\"}
}" "localhost:$port" jalon.v1.PersonService/CreatePerson >/dev/null
count="$(grpcurl -plaintext "${auth[@]}" -d "{\"organisation_id\": \"$org_id\"}" "localhost:$port" jalon.v1.PersonService/ListPeople \
  | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["people"]))')"
[ "$count" = 2 ] || { echo "expected 2 people, got $count" >&2; exit 1; }
grpcurl -plaintext "${auth[@]}" -d "{
  \"organisation\": {\"id\": \"$org_id\", \"display_name\": \"Acme Group\", \"etag\": \"W/\\\"1\\\"\"},
  \"update_mask\": {\"paths\": [\"display_name\"]}
}" "localhost:$port" jalon.v1.OrganisationService/UpdateOrganisation | grep -q '"displayName": "Acme Group"'
grpcurl -plaintext "${auth[@]}" -d "{
  \"organisation_id\": \"$org_id\",
  \"project\": {\"name\": \"Callbot\", \"tags\": [\"callbot\", \"nlp\"], \"gain_quantified\": true,
              \"expected_gain\": {\"currency_code\": \"EUR\", \"amount\": \"250000\"},
              \"usage\": \"USAGE_PRODUCTIVITY\", \"data_kinds\": [\"DATA_KIND_AUDIO\"],
              \"planned_start_date\": {\"year\": 2027, \"month\": 1, \"day\": 4}}
}" "localhost:$port" jalon.v1.ProjectService/CreateProject >/dev/null
projects="$(grpcurl -plaintext "${auth[@]}" -d "{\"organisation_id\": \"$org_id\", \"tag\": \"nlp\"}" "localhost:$port" jalon.v1.ProjectService/ListProjects \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); p=d["projects"][0]; print(len(d["projects"]), p["phase"], p["expectedGain"]["amount"])')"
[ "$projects" = "1 PHASE_IDEATION 250000.00" ] || { echo "unexpected projects: $projects" >&2; exit 1; }
if grpcurl -plaintext "localhost:$port" jalon.v1.OrganisationService/ListOrganisations 2>err.txt; then
  echo "a call without a token was accepted" >&2; exit 1
fi
grep -q Unauthenticated err.txt

kill -TERM $pid
wait $pid
grep -q "stopped" serve.log
echo "smoke: ok"
