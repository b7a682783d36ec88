#!/usr/bin/env python3
"""Draws the chart's Grafana dashboards as pictures (docs/dashboards/*.png)
without Grafana: it runs the release proxy and the mock provider under a
scripted load, scrapes /metrics every second, and evaluates each panel's own
PromQL (the subset the dashboards use) over the scrapes. With KUBECONFIG set
to a cluster (or the real-API-server tier's), it also runs the operator for
the operator dashboard.

    cargo build --release -p llmpool-proxy -p llmpool-e2e -p llmpool-operator --bins
    python3 scripts/dashboard-pictures.py [SECONDS]

Needs matplotlib (installed into target/pictures-venv when missing).
"""

import json
import os
import pathlib
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / "target" / "pictures-venv"

if os.environ.get("LLMPOOL_PICTURES_VENV") != "1":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "matplotlib==3.9.2"], check=True)
        env = dict(os.environ, LLMPOOL_PICTURES_VENV="1")
        os.execve(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]], env)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# --- a PromQL subset over a series of scrapes --------------------------------

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_scrape(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = LINE.match(line)
        if not m:
            continue
        labels = tuple(sorted(LABEL.findall(m.group(3) or "")))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


class Query:
    """Evaluates one expression at scrape index i: a dict labels -> value."""

    def __init__(self, scrapes, times):
        self.s, self.t = scrapes, times

    def select(self, name, matchers, i):
        out = {}
        for (n, labels), v in self.s[i].items():
            if n != name:
                continue
            d = dict(labels)
            if all(self.match(d.get(k, ""), op, val) for k, op, val in matchers):
                out[labels] = v
        return out

    @staticmethod
    def match(have, op, want):
        want = want.replace("$namespace", ".*").replace("$route", ".*").replace("$account", ".*")
        if op == "=":
            return have == want
        if op == "!=":
            return have != want
        if op == "=~":
            return re.fullmatch(want, have) is not None
        return re.fullmatch(want, have) is None

    def window_start(self, i, seconds):
        j = i
        while j > 0 and self.t[i] - self.t[j - 1] <= seconds:
            j -= 1
        return j

    def rate(self, name, matchers, seconds, i, increase=False):
        j = self.window_start(i, seconds)
        now, then = self.select(name, matchers, i), self.select(name, matchers, j)
        dt = self.t[i] - self.t[j]
        out = {}
        for k, v in now.items():
            d = max(v - then.get(k, 0.0), 0.0)
            out[k] = d if increase else (d / dt if dt > 0 else 0.0)
        return out


TOKEN = re.compile(r'\s*(\d+\.\d+|\d+|[a-zA-Z_:][a-zA-Z0-9_:]*|=~|!~|!=|\[[0-9smh]+\]|"(?:[^"\\]|\\.)*"|[(){},=*/\-+])')


def tokenize(expr):
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def seconds(window):
    n, unit = int(window[1:-2]), window[-2]
    return n * {"s": 1, "m": 60, "h": 3600}[unit]


class Parser:
    def __init__(self, expr):
        self.tok = tokenize(expr)
        self.pos = 0

    def peek(self):
        return self.tok[self.pos] if self.pos < len(self.tok) else None

    def take(self, want=None):
        t = self.peek()
        if want is not None and t != want:
            raise ValueError(f"expected {want}, got {t}")
        self.pos += 1
        return t

    def expr(self):
        left = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term()
            left = ("bin", op, left, right)
        return left

    def term(self):
        left = self.atom()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.atom()
            left = ("bin", op, left, right)
        return left

    def atom(self):
        t = self.take()
        if re.fullmatch(r"\d+(\.\d+)?", t):
            return ("num", float(t))
        if t == "(":
            e = self.expr()
            self.take(")")
            return e
        if t in ("sum", "max", "count", "min"):
            by = None
            if self.peek() == "by":
                self.take()
                self.take("(")
                by = []
                while self.peek() != ")":
                    by.append(self.take())
                    if self.peek() == ",":
                        self.take()
                self.take(")")
            self.take("(")
            e = self.expr()
            self.take(")")
            return ("agg", t, by, e)
        if t in ("rate", "increase"):
            self.take("(")
            name, matchers = self.selector(self.take())
            window = seconds(self.take())
            self.take(")")
            return (t, name, matchers, window)
        if t == "histogram_quantile":
            self.take("(")
            q = float(self.take())
            self.take(",")
            e = self.expr()
            self.take(")")
            return ("hq", q, e)
        if t == "scalar":
            self.take("(")
            e = self.expr()
            self.take(")")
            return ("scalar", e)
        name, matchers = self.selector(t)
        return ("sel", name, matchers)

    def selector(self, name):
        matchers = []
        if self.peek() == "{":
            self.take()
            while self.peek() != "}":
                k = self.take()
                op = self.take()
                v = self.take()[1:-1].replace('\\"', '"')
                matchers.append((k, op, v))
                if self.peek() == ",":
                    self.take()
            self.take("}")
        return name, matchers


def evaluate(node, q, i):
    kind = node[0]
    if kind == "num":
        return {(): node[1]}
    if kind == "sel":
        return q.select(node[1], node[2], i)
    if kind in ("rate", "increase"):
        return q.rate(node[1], node[2], node[3], i, increase=kind == "increase")
    if kind == "scalar":
        v = evaluate(node[1], q, i)
        return {(): sum(v.values()) if len(v) == 1 else float("nan")}
    if kind == "agg":
        _, fn, by, inner = node
        groups = {}
        for labels, v in evaluate(inner, q, i).items():
            d = dict(labels)
            key = tuple(sorted((k, d.get(k, "")) for k in (by or [])))
            groups.setdefault(key, []).append(v)
        f = {"sum": sum, "max": max, "min": min, "count": len}[fn]
        return {k: float(f(vs)) for k, vs in groups.items()}
    if kind == "hq":
        _, qn, inner = node
        buckets = {}
        for labels, v in evaluate(inner, q, i).items():
            d = dict(labels)
            le = d.pop("le", "+Inf")
            buckets.setdefault(tuple(sorted(d.items())), []).append((float(le), v))
        out = {}
        for k, bs in buckets.items():
            bs.sort()
            total = bs[-1][1] if bs else 0
            if total <= 0:
                continue
            rank, prev_le, prev_c = qn * total, 0.0, 0.0
            for le, c in bs:
                if c >= rank:
                    if le == float("inf"):
                        out[k] = prev_le
                    else:
                        out[k] = prev_le + (le - prev_le) * ((rank - prev_c) / max(c - prev_c, 1e-9))
                    break
                prev_le, prev_c = le, c
        return out
    if kind == "bin":
        _, op, a, b = node
        left, right = evaluate(a, q, i), evaluate(b, q, i)
        f = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
             "/": lambda x, y: x / y if y else float("nan")}[op]
        if () in right and len(right) == 1:
            return {k: f(v, right[()]) for k, v in left.items()}
        if () in left and len(left) == 1:
            return {k: f(left[()], v) for k, v in right.items()}
        return {k: f(v, right[k]) for k, v in left.items() if k in right}
    raise ValueError(kind)


def legend(fmt, labels):
    d = dict(labels)
    return re.sub(r"\{\{(\w+)\}\}", lambda m: d.get(m.group(1), ""), fmt) or "value"


def draw(dashboard, scrapes, times, out):
    panels = dashboard["panels"]
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 5.2, rows * 3.1), squeeze=False)
    q = Query(scrapes, times)
    t0 = times[0]
    for ax, p in zip(axes.flat, panels):
        ax.set_title(p["title"], fontsize=9)
        ax.tick_params(labelsize=7)
        drawn = 0
        for target in p["targets"]:
            node = Parser(target["expr"]).expr()
            series = {}
            for i in range(len(scrapes)):
                for labels, v in evaluate(node, q, i).items():
                    series.setdefault(labels, []).append((times[i] - t0, v))
            for labels, pts in sorted(series.items())[:8]:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=legend(target.get("legendFormat", ""), labels), linewidth=1.2)
                drawn += 1
        ax.set_xlabel("seconds", fontsize=7)
        if drawn:
            ax.legend(fontsize=6, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(dashboard["title"] + " — the dashboard's queries over a scripted run (not Grafana)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


# --- the scripted run ---------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


CONFIG = """apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData:
  steady: "steady?latency_ms=40&chunks=4&chunk_ms=30"
  limited: "limited?status=429&retry_after=8&times=60"
  spare: "spare?latency_ms=60"
  claude: "claude?latency_ms=50"
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {{name: steady}}
spec: {{provider: openai-compatible, baseUrl: "{url}/v1", credentials: {{secretRef: {{name: keys, key: steady}}}},
        limits: {{requestsPerMinute: 900, tokensPerMinute: 200000, maxConcurrency: 8}}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {{name: limited}}
spec: {{provider: openai-compatible, baseUrl: "{url}/v1", credentials: {{secretRef: {{name: keys, key: limited}}}},
        limits: {{requestsPerMinute: 600, maxConcurrency: 8}}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {{name: spare}}
spec: {{provider: openai-compatible, baseUrl: "{url}/v1", credentials: {{secretRef: {{name: keys, key: spare}}}},
        limits: {{maxConcurrency: 4}}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {{name: claude}}
spec: {{provider: anthropic, baseUrl: "{url}", credentials: {{secretRef: {{name: keys, key: claude}}}},
        limits: {{requestsPerMinute: 300, maxConcurrency: 4}}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {{name: gpt}}
spec:
  models: [gpt-demo]
  strategy: sticky
  targets:
    - accounts: {{names: [steady, limited]}}
    - accounts: {{names: [spare]}}
    - accounts: {{names: [claude]}}
      model: claude-demo
"""


def request(base, path, body, headers):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
    except Exception:  # noqa: BLE001 - errors are part of the picture
        pass


def load(base, stop, rate):
    rng = random.Random(7)
    while not stop.is_set():
        kind = rng.random()
        session = f"s{rng.randrange(12)}"
        if kind < 0.6:
            request(base, "/v1/chat/completions",
                    {"model": "gpt-demo", "stream": rng.random() < 0.5, "stream_options": {"include_usage": True},
                     "messages": [{"role": "user", "content": "hello " * rng.randrange(5, 60)}]},
                    {"x-session-id": session})
        elif kind < 0.9:
            request(base, "/v1/messages",
                    {"model": "gpt-demo", "max_tokens": 64, "stream": rng.random() < 0.5,
                     "messages": [{"role": "user", "content": "hi " * rng.randrange(5, 40)}]},
                    {"anthropic-version": "2023-06-01", "x-session-id": session})
        else:
            request(base, "/v1/chat/completions",
                    {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}, {})
        time.sleep(rng.expovariate(rate))


OPERATOR_RESOURCES = """apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {{a: a, b: b, broken: ""}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {{name: a}}
spec: {{provider: openai-compatible, baseUrl: "{url}/v1", credentials: {{secretRef: {{name: keys, key: a}}}}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {{name: b}}
spec: {{provider: openai-compatible, baseUrl: "{url}/v1", credentials: {{secretRef: {{name: keys, key: b}}}}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {{name: r}}
spec: {{models: [m], targets: [{{accounts: {{names: [a, b]}}}}]}}
"""


def kubectl(*args, stdin=None):
    return subprocess.run(["kubectl", *args], input=stdin, text=True, capture_output=True, check=True).stdout


def start_operator(release, mock_url):
    """With KUBECONFIG set: a namespace with two accounts and a route, and
    the operator reconciling it; returns (process, metrics URL, namespace)."""
    if not os.environ.get("KUBECONFIG"):
        return None, None, None
    ns = f"llmpool-pictures-{os.getpid()}"
    kubectl("create", "namespace", ns)
    kubectl("apply", "-f", str(ROOT / "crds" / "yaml"))
    kubectl("wait", "--for=condition=established", "--timeout=60s", "crd/llmaccounts.llmpool.dev")
    kubectl("-n", ns, "apply", "-f", "-", stdin=OPERATOR_RESOURCES.format(url=mock_url))
    port = free_port()
    proc = subprocess.Popen([str(release / "llmpool-operator"), "--namespace", ns, "--no-leader-election",
                             "--metrics", f"127.0.0.1:{port}", "--resync", "5s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}/metrics", ns


def churn(ns, stop):
    """Edits the route now and then, so the operator has work."""
    i = 0
    while not stop.wait(3.0):
        i += 1
        try:
            kubectl("-n", ns, "annotate", "modelroute", "r", f"pictures/round={i}", "--overwrite")
            kubectl("-n", ns, "patch", "llmaccount", "b", "--type=merge", "-p",
                    json.dumps({"spec": {"weight": 1 + i % 3}}))
        except subprocess.CalledProcessError:
            pass


def main():
    duration = int(sys.argv[1]) if len(sys.argv) > 1 else 90
    release = ROOT / "target" / "release"
    out_dir = ROOT / "docs" / "dashboards"
    out_dir.mkdir(parents=True, exist_ok=True)
    mock_port, proxy_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as cfg:
        pathlib.Path(cfg, "config.yaml").write_text(CONFIG.format(url=f"http://127.0.0.1:{mock_port}"))
        mock = subprocess.Popen([str(release / "mock-provider"), "--listen", f"127.0.0.1:{mock_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = subprocess.Popen([str(release / "llmpool-proxy"), "--config", cfg,
                                  "--listen", f"127.0.0.1:{proxy_port}", "--log", "warn"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{proxy_port}"
        operator, operator_metrics, ns = start_operator(release, f"http://127.0.0.1:{mock_port}")
        time.sleep(1.5)
        stop = threading.Event()
        workers = [threading.Thread(target=load, args=(base, stop, 12.0), daemon=True) for _ in range(4)]
        if ns:
            workers.append(threading.Thread(target=churn, args=(ns, stop), daemon=True))
        for w in workers:
            w.start()
        scrapes, times, operator_scrapes = [], [], []
        started = time.time()
        try:
            while time.time() - started < duration:
                with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
                    scrapes.append(parse_scrape(r.read().decode()))
                if operator_metrics:
                    try:
                        with urllib.request.urlopen(operator_metrics, timeout=5) as r:
                            operator_scrapes.append(parse_scrape(r.read().decode()))
                    except OSError:
                        operator_scrapes.append({})
                times.append(time.time())
                time.sleep(1.0)
        finally:
            stop.set()
            proxy.terminate()
            mock.terminate()
            if operator:
                operator.terminate()
                subprocess.run(["kubectl", "delete", "namespace", ns, "--wait=false"], capture_output=True)
    for name in ("pool", "gateway"):
        dashboard = json.loads((ROOT / "charts/llmpool/dashboards" / f"{name}.json").read_text())
        draw(dashboard, scrapes, times, out_dir / f"{name}.png")
        print(f"wrote docs/dashboards/{name}.png")
    if operator_scrapes:
        dashboard = json.loads((ROOT / "charts/llmpool/dashboards/operator.json").read_text())
        draw(dashboard, operator_scrapes, times, out_dir / "operator.png")
        print("wrote docs/dashboards/operator.png")


if __name__ == "__main__":
    main()
