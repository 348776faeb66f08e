#!/usr/bin/env bash
# Checks the Helm chart in charts/countersign without a cluster or a helm binary:
# lints it, renders it with the default values (plus the four secrets that have
# no default) and with ci/production-values.yaml, validates every rendered
# manifest against the Kubernetes schemas (strict), and checks that the chart
# refuses what it must refuse. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"
started=$SECONDS

python=${PYTHON:-python3}
tmp=$("$python" -c 'import tempfile; print(tempfile.gettempdir())')
# One virtualenv per requirements file and Python version, reused between runs.
tag=$( { cat requirements.txt; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
venv="$tmp/countersign-chart-check-$tag"
if [ ! -f "$venv/.installed" ]; then
  echo "chart check: installing the tools of charts/requirements.txt into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r requirements.txt
  touch "$venv/.installed"
fi

"$venv/bin/python" - countersign <<'PY'
import sys

import helm_python as helm
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

CHART = sys.argv[1]
KUBE_VERSION = "1.37.0"  # the newest the pinned kubernetes-validate knows
RELEASE, NAMESPACE = "countersign", "countersign"

# Test-only stand-ins for the four values without a default.
REQUIRED = {
    "secrets": {
        "databaseUrl": {"value": "postgres://countersign:secret@postgresql:5432/countersign"},
        "operatorKey": {"value": "test-operator-key"},
        "jwtSecret": {"value": "test-jwt-secret-of-at-least-32-bytes!"},
        "historySigningKey": {"value": "-----BEGIN PRIVATE KEY-----\ntest\n-----END PRIVATE KEY-----\n"},
    }
}

passed, failures = [], []


def check(name, fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - every failure is reported, then the run fails
        failures.append(name)
        print(f"FAIL {name}: {exc}")
    else:
        passed.append(name)
        print(f"ok   {name}")


def lint(values):
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] or report["errors"]
    if problems:
        raise AssertionError(problems)


def render(values):
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs += [(path, doc) for doc in yaml.safe_load_all(text) if doc]
    return docs


def check_service_monitor(doc):
    """monitoring.coreos.com is a CRD: kubernetes-validate has no schema for it."""
    assert doc.get("apiVersion") == "monitoring.coreos.com/v1", "apiVersion"
    assert doc.get("kind") == "ServiceMonitor", "kind"
    assert doc.get("metadata", {}).get("name"), "metadata.name"
    spec = doc.get("spec") or {}
    assert isinstance(spec.get("selector"), dict) and spec["selector"], "spec.selector"
    endpoints = spec.get("endpoints")
    assert isinstance(endpoints, list) and endpoints, "spec.endpoints"
    assert all(isinstance(e, dict) and e.get("port") for e in endpoints), "spec.endpoints[].port"


def validate(docs):
    errors = []
    for path, doc in docs:
        what = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            if doc.get("kind") == "ServiceMonitor":
                check_service_monitor(doc)
                print(f"     {what}: no schema in kubernetes-validate (a CRD); required fields checked here")
            else:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except ValidationError as exc:
            errors.append(f"{what}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except SchemaNotFoundError as exc:
            errors.append(f"{what}: {exc.message}")
        except AssertionError as exc:
            errors.append(f"{what}: missing or wrong {exc}")
    if errors:
        raise AssertionError("\n  " + "\n  ".join(errors))


def by_kind(docs):
    kinds = {}
    for _, doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def check_invariants(docs, expected_kinds, values):
    kinds = by_kind(docs)
    assert sorted(kinds) == sorted(expected_kinds), f"kinds {sorted(kinds)} != {sorted(expected_kinds)}"
    pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
    api = pod["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness probe"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness probe"
    assert api["securityContext"]["readOnlyRootFilesystem"] is True, "read-only root filesystem"
    assert pod["securityContext"]["runAsNonRoot"] is True, "non-root"
    assert {"requests", "limits"} <= set(api["resources"]), "resource requests and limits"
    assert any(m["mountPath"] == "/tmp" for m in api["volumeMounts"]), "/tmp emptyDir"
    sleep = int(api["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > sleep + 50, "grace period must outlast preStop + a 50 s long poll"
    drain = int(kinds["ConfigMap"][0]["data"]["COUNTERSIGN_SHUTDOWN_TIMEOUT_SECS"])
    assert drain > 50, "the drain after SIGTERM must outlast a 50 s long poll"
    assert pod["terminationGracePeriodSeconds"] > sleep + drain, "grace period must outlast preStop + the drain"
    job = kinds["Job"][0]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade", "migration hook"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["countersign", "migrate"], "migrate"
    # The database roles: the owner's URL reaches the migration Job and never the API pods.
    def secret_refs(container):
        return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "valueFrom" in e}
    api_env = secret_refs(api)
    job_env = secret_refs(job["spec"]["template"]["spec"]["containers"][0])
    migration = owner_secret(values)
    if migration is not None:
        assert job_env["DATABASE_URL"] == migration, "the migration Job connects as the owner"
        assert migration not in api_env.values(), "the owner's URL must not reach the API pods"
    if "COUNTERSIGN_WORKER_DATABASE_URL" in api_env:
        assert api_env["COUNTERSIGN_WORKER_DATABASE_URL"] != api_env["DATABASE_URL"], "two roles, two URLs"
    check_metrics_reach(kinds, api)


def check_metrics_reach(kinds, api):
    """/metrics only on the `metrics` port: not on the public Service, never behind the Ingress."""
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert set(ports) == {"http", "metrics"}, f"container ports {sorted(ports)}"
    config = kinds["ConfigMap"][0]["data"]
    assert config["COUNTERSIGN_LISTEN"] == f"0.0.0.0:{ports['http']}", "COUNTERSIGN_LISTEN is the http port"
    assert config["COUNTERSIGN_METRICS_LISTEN"] == f"0.0.0.0:{ports['metrics']}", "COUNTERSIGN_METRICS_LISTEN is the metrics port"
    services = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in kinds["Service"]}
    assert sorted(services) == ["api", "metrics"], f"Services {sorted(services)}"
    public = [p["targetPort"] for p in services["api"]["spec"]["ports"]]
    assert public == ["http"], f"the public Service reaches {public}"
    private = services["metrics"]["spec"]
    assert private["type"] == "ClusterIP", "the metrics Service stays inside the cluster"
    assert [p["targetPort"] for p in private["ports"]] == ["metrics"], "the metrics Service reaches only the metrics port"
    for ingress in kinds.get("Ingress", []):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] == services["api"]["metadata"]["name"], f"an Ingress path reaches {backend['name']}"
                assert backend["port"] == {"name": "http"}, f"an Ingress path reaches port {backend['port']}"
    for monitor in kinds.get("ServiceMonitor", []):
        selected = monitor["spec"]["selector"]["matchLabels"]
        assert all(services["metrics"]["metadata"]["labels"].get(k) == v for k, v in selected.items()), "the ServiceMonitor selects the metrics Service"
        assert not all(services["api"]["metadata"]["labels"].get(k) == v for k, v in selected.items()), "the ServiceMonitor must not select the public Service"
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"], "the ServiceMonitor scrapes the metrics port"


def owner_secret(values):
    """The secretKeyRef of the owner's URL, when the values name an existing Secret for it."""
    item = (values or {}).get("secrets", {}).get("migrationDatabaseUrl", {})
    if item.get("existingSecret"):
        return {"name": item["existingSecret"], "key": item["existingSecretKey"]}
    return None


def scenario(label, values, expected_kinds):
    docs = []

    def do_render():
        docs.extend(render(values))
        print(f"     {len(docs)} manifests")

    check(f"lint ({label})", lambda: lint(values))
    check(f"render ({label})", do_render)
    check(f"validate against Kubernetes {KUBE_VERSION}, strict ({label})", lambda: validate(docs))
    check(f"invariants ({label})", lambda: check_invariants(docs, expected_kinds, values))


def refuses(label, values, message):
    def run():
        try:
            render(values)
        except helm.HelmRenderError as exc:
            assert message in str(exc), f"error does not mention {message!r}: {exc}"
        else:
            raise AssertionError("rendered, but should have failed")

    check(f"refuses {label}", run)


with open(f"{CHART}/ci/production-values.yaml") as f:
    production = helm.values_from_yaml(f.read())

def check_documented():
    """Every value in values.yaml appears, in backticks, in the values table of README.md."""
    with open(f"{CHART}/values.yaml") as f:
        defaults = yaml.safe_load(f)
    with open(f"{CHART}/README.md") as f:
        readme = f.read()
    missing = []

    def walk(tree, prefix):
        for key, value in tree.items():
            path = f"{prefix}{key}"
            if f"| `{path}` |" in readme:
                continue  # documented as a whole
            if isinstance(value, dict) and value:
                walk(value, f"{path}.")
            else:
                missing.append(path)

    walk(defaults, "")
    if missing:
        raise AssertionError(f"not in the values table of {CHART}/README.md: {', '.join(missing)}")


check("every value documented in README.md", check_documented)
refuses("the bare defaults (no secrets)", None, "secrets.databaseUrl")
refuses("workers.mode=separate", {**REQUIRED, "workers": {"mode": "separate"}}, "reserved")
refuses("metrics.port equal to containerPort", {**REQUIRED, "metrics": {"port": 8080}}, "metrics.port")
scenario(
    "default values + required secrets",
    REQUIRED,
    # Two Secrets: the chart's and the migration hook's.
    ["ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Secret", "Service"],
)
scenario(
    "ci/production-values.yaml",
    production,
    ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job",
     "PodDisruptionBudget", "Service", "ServiceMonitor"],
)

print(f"chart check: {len(passed)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
PY
echo "chart check: done in $((SECONDS - started)) s"
