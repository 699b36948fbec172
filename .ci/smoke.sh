#!/usr/bin/env bash
# Starts the binary with no configuration in an empty directory and plays the
# README's grpcurl session: list, mint a token, create an organisation, add a
# person, list people; then its SCIM session with curl. Needs grpcurl and curl
# on PATH.
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

# The README's SCIM session ("Connect your identity provider"): a
# provisioning token, then the identity provider's calls on the same port;
# grace, created above, is adopted by her e-mail address.
SCIM_TOKEN="$(grpcurl -plaintext "${auth[@]}" -d "{\"organisation_id\": \"$org_id\", \"display_name\": \"Entra ID\"}" \
  "localhost:$port" jalon.v1.ProvisioningService/CreateProvisioningToken | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"
grpcurl -plaintext "${auth[@]}" -d "{\"organisation_id\": \"$org_id\",
  \"mapping\": {\"group_name\": \"AI portfolio directors\", \"role\": \"ROLE_DIRECTOR\"}}" \
  "localhost:$port" jalon.v1.ProvisioningService/SetGroupRoleMapping >/dev/null
created="$(curl -s -o created.json -w '%{http_code}' -X POST -H "authorization: Bearer $SCIM_TOKEN" -H 'content-type: application/scim+json' \
  -d '{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "grace@acme.example",
       "name": {"givenName": "Grace", "familyName": "Hopper"},
       "emails": [{"value": "grace@acme.example", "primary": true}], "active": true}' \
  "localhost:$port/scim/v2/Users")"
[ "$created" = 201 ] || { echo "SCIM POST /Users answered $created: $(cat created.json)" >&2; exit 1; }
found="$(curl -s -H "authorization: Bearer $SCIM_TOKEN" \
  "localhost:$port/scim/v2/Users?filter=userName%20eq%20%22Grace%40acme.example%22" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["totalResults"])')"
[ "$found" = 1 ] || { echo "SCIM filter found $found users" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$port/scim/v2/Users")" = 401 ] \
  || { echo "SCIM answered without a token" >&2; exit 1; }
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

# The README's gate review on the demo portfolio.
demo_dir="$(mktemp -d)"
demo_port=50652
cd "$demo_dir"
"$jalon" serve --demo --listen "127.0.0.1:$demo_port" >serve.out 2>serve.log &
demo_pid=$!
trap 'kill $pid $demo_pid 2>/dev/null || true; rm -rf "$dir" "$demo_dir"' EXIT
for _ in $(seq 1 100); do
  grep -q "export TOKEN" serve.out 2>/dev/null && grpcurl -plaintext "localhost:$demo_port" list >/dev/null 2>&1 && break
  kill -0 $demo_pid 2>/dev/null || { echo "jalon serve --demo exited:" >&2; cat serve.log >&2; exit 1; }
  sleep 0.2
done
eval "$(grep 'export ' serve.out | sed 's/^ *//')"
g() { grpcurl -plaintext -H "authorization: Bearer $1" -d "$2" "localhost:$demo_port" "$3"; }
PROJECT="$(g "$TOKEN" "{\"organisation_id\": \"$ORG\"}" jalon.v1.ProjectService/ListProjects \
  | python3 -c 'import json,sys; print([p["id"] for p in json.load(sys.stdin)["projects"] if p["name"].startswith("VNF")][0])')"
LEAD="$("$jalon" token --subject demo-lead-iot)"
SPONSOR="$("$jalon" token --subject demo-sponsor-ops)"
open_musts="$(g "$TOKEN" "{\"organisation_id\": \"$ORG\", \"project_id\": \"$PROJECT\"}" jalon.v1.AssessmentService/GetReadiness \
  | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["overall"].get("mustOpen", [])))')"
[ -n "$open_musts" ] || { echo "the demo's POC project should have open MUST items" >&2; exit 1; }
# The README answers this one: it must be open on the demo.
case " $open_musts " in
  *" poc.technical-integration.integration-path-validated "*) ;;
  *) echo "the README's example item is not open on the demo (open: $open_musts)" >&2; exit 1 ;;
esac
for key in $open_musts; do
  g "$LEAD" "{\"organisation_id\": \"$ORG\", \"project_id\": \"$PROJECT\", \"key\": \"$key\", \"status\": \"ANSWER_STATUS_DONE\", \"risk\": \"RISK_LEVEL_LOW\"}" \
    jalon.v1.AssessmentService/AnswerAssessmentItem >/dev/null
done
# The POC result, on the project's primary KPI (leaving POC needs it).
KPI="$(g "$LEAD" "{\"organisation_id\": \"$ORG\", \"project_id\": \"$PROJECT\"}" jalon.v1.KpiService/ListKpis \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["kpis"][0]["id"])')"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
g "$LEAD" "{\"organisation_id\": \"$ORG\", \"measurement\": {\"kpi_id\": \"$KPI\", \"value\": 86.5, \"stage\": \"STAGE_POC\",
  \"measure_time\": \"$now\", \"sample_size\": 120, \"std_dev\": 6.2}}" jalon.v1.KpiService/RecordMeasurement >/dev/null
REVIEW="$(g "$LEAD" "{\"organisation_id\": \"$ORG\", \"project_id\": \"$PROJECT\"}" jalon.v1.GateService/RequestGateReview \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["review"]["id"])')"
if g "$TOKEN" "{\"organisation_id\": \"$ORG\", \"review_id\": \"$REVIEW\", \"outcome\": \"GATE_OUTCOME_GO\", \"rationale\": \"too early\"}" \
  jalon.v1.GateService/DecideGate 2>refused.txt; then
  echo "GO without the sponsor's signature was accepted" >&2; exit 1
fi
grep -q SIGNATURE_MISSING refused.txt
g "$SPONSOR" "{\"organisation_id\": \"$ORG\", \"review_id\": \"$REVIEW\", \"verdict\": \"VERDICT_APPROVE\", \"comment\": \"convinced\"}" \
  jalon.v1.GateService/SignGate >/dev/null
phase="$(g "$TOKEN" "{\"organisation_id\": \"$ORG\", \"review_id\": \"$REVIEW\", \"outcome\": \"GATE_OUTCOME_GO\", \"rationale\": \"criteria met\"}" \
  jalon.v1.GateService/DecideGate | python3 -c 'import json,sys; print(json.load(sys.stdin)["project"]["phase"])')"
[ "$phase" = PHASE_INDUSTRIALISATION ] || { echo "unexpected phase after GO: $phase" >&2; exit 1; }
g "$TOKEN" "{\"organisation_id\": \"$ORG\"}" jalon.v1.AuditService/VerifyAuditLog | grep -q '"valid": true'
# The README's portfolio session: VNF has just passed its POC gate.
summary="$(g "$TOKEN" "{\"organisation_id\": \"$ORG\"}" jalon.v1.PortfolioService/GetPortfolioSummary \
  | python3 -c 'import json,sys; s=json.load(sys.stdin)["summary"]; print(s["projectCount"], [f.get("passed", "0") for f in s["funnel"]["stages"]], s["money"]["cost"]["amount"])')"
[ "$summary" = "7 ['6', '5', '3', '2'] 564000.00" ] || { echo "unexpected portfolio summary: $summary" >&2; exit 1; }
alerts="$(g "$TOKEN" "{\"organisation_id\": \"$ORG\"}" jalon.v1.PortfolioService/ListAlerts \
  | python3 -c 'import json,sys; print(" ".join(sorted(a["kind"] for a in json.load(sys.stdin)["alerts"])))')"
[ "$alerts" = "ALERT_KIND_BUDGET_OVERRUN ALERT_KIND_GATE_OVERDUE ALERT_KIND_KPI_WITHOUT_BASELINE ALERT_KIND_REVIEW_OVERDUE ALERT_KIND_SPONSOR_INACTIVE" ] \
  || { echo "unexpected alerts: $alerts" >&2; exit 1; }
top="$(g "$TOKEN" "{\"organisation_id\": \"$ORG\", \"sort\": \"PORTFOLIO_SORT_COST\", \"descending\": true, \"page_size\": 3}" \
  jalon.v1.PortfolioService/ListPortfolioProjects | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["projects"]))')"
[ "$top" = 3 ] || { echo "expected 3 rows, got $top" >&2; exit 1; }
exported="$(g "$TOKEN" "{\"organisation_id\": \"$ORG\"}" jalon.v1.PortfolioService/ExportPortfolio | grep -c '"projectId"')"
[ "$exported" = 7 ] || { echo "expected 7 exported rows, got $exported" >&2; exit 1; }
kill -TERM $demo_pid
wait $demo_pid
# The operator's rebuild, on the stopped demo database.
"$jalon" rebuild-portfolio --organisation demo-ai-portfolio | tee rebuilt.txt
grep -q "^7 project(s) of demo-ai-portfolio " rebuilt.txt
if "$jalon" rebuild-portfolio --organisation nowhere 2>missing.txt; then
  echo "a rebuild of an unknown organisation succeeded" >&2; exit 1
fi
grep -q 'no organisation "nowhere"' missing.txt
echo "smoke (demo gate review): ok"
