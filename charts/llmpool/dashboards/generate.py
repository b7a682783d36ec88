#!/usr/bin/env python3
"""Writes the chart's Grafana dashboards (pool, gateway, operator) and the
PrometheusRule's alert groups from one list of panels, so every query is
written once. Run it after changing a panel; the chart test fails when the
JSON files and this script disagree, and the metric check fails when a query
names a metric the proxy or the operator does not export.

    python3 charts/llmpool/dashboards/generate.py
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'namespace=~"$namespace"'


def var(name, query, multi=True):
    return {
        "name": name, "label": name, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": name}, "refresh": 2, "includeAll": True,
        "multi": multi, "current": {"text": "All", "value": "$__all"}, "sort": 1,
    }


def variables(extra):
    ds = {"name": "datasource", "label": "data source", "type": "datasource",
          "query": "prometheus", "current": {}}
    ns = var("namespace", "label_values(llmpool_config_generation, namespace)")
    return [ds, ns] + extra


def panel(title, targets, unit="short", kind="timeseries", w=12, h=8, desc=""):
    return {
        "type": kind, "title": title, "description": desc, "datasource": DS,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DS}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def layout(panels):
    x = y = row_h = 0
    for i, p in enumerate(panels):
        p["id"] = i + 1
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_h
            row_h = 0
        p["gridPos"].update({"x": x, "y": y})
        x += w
        row_h = max(row_h, h)
    return panels


def dashboard(uid, title, description, panels, extra_vars=()):
    return {
        "uid": uid, "title": title, "description": description, "tags": ["llmpool"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
        "templating": {"list": variables(list(extra_vars))},
        "panels": layout(panels),
    }


ACC = f'{SEL}, account=~"$account"'
ROUTE = f'{SEL}, route=~"$route"'
CLIENT = f'{SEL}, client=~"$client"'

POOL = dashboard(
    "llmpool-pool", "llmpool / Pool",
    "Which account is saturated, and why: traffic, limits, cooldowns and fallbacks per route and account; and what each client (team) uses.",
    [
        panel("Requests/s by account and status",
              [(f"sum by (account, status) (rate(llmpool_requests_total{{{ROUTE}, account=~\"$account\"}}[5m]))", "{{account}} {{status}}")], "reqps"),
        panel("In flight vs maxConcurrency",
              [(f"sum by (account) (llmpool_account_in_flight{{{ACC}}})", "{{account}} in flight"),
               (f"max by (account) (llmpool_account_limit{{{ACC}, limit=\"max_concurrency\"}})", "{{account}} limit")]),
        panel("Requests per minute vs limit",
              [(f"sum by (account) (rate(llmpool_upstream_attempts_total{{{ACC}}}[1m])) * 60", "{{account}} used"),
               (f"max by (account) (llmpool_account_limit{{{ACC}, limit=\"requests_per_minute\"}})", "{{account}} limit")]),
        panel("Tokens per minute vs limit",
              [(f"sum by (account) (rate(llmpool_tokens_total{{{ACC}, kind=~\"input|output\"}}[1m])) * 60", "{{account}} used"),
               (f"max by (account) (llmpool_account_limit{{{ACC}, limit=\"tokens_per_minute\"}})", "{{account}} limit")]),
        panel("Cooldowns started, by cause",
              [(f"sum by (account, reason) (increase(llmpool_account_cooldowns_total{{{ACC}}}[5m]))", "{{account}} {{reason}}")],
              desc="rate_limited: a 429; exhausted: a zero remaining budget; blocked: credentials or quota."),
        panel("Time until cooldowns end",
              [(f"max by (account) (llmpool_account_cooldown_seconds{{{ACC}}})", "{{account}}")], "s"),
        panel("Accounts blocked (credentials or quota)",
              [(f"max by (account) (llmpool_account_blocked{{{ACC}}})", "{{account}}")], kind="stat", w=6),
        panel("Retries by cause",
              [(f"sum by (outcome) (rate(llmpool_upstream_attempts_total{{{ROUTE}, outcome!=\"ok\"}}[5m]))", "{{outcome}}")], "reqps", w=9),
        panel("Served by tier (0 = first; more = fallbacks)",
              [(f"sum by (route, tier) (rate(llmpool_route_tier_served_total{{{ROUTE}}}[5m]))", "{{route}} tier {{tier}}")], "reqps", w=9),
        panel("Sticky sessions served by their bound account",
              [(f"sum by (route) (rate(llmpool_session_requests_total{{{ROUTE}, result=\"hit\"}}[5m])) / sum by (route) (rate(llmpool_session_requests_total{{{ROUTE}}}[5m]))", "{{route}}")],
              "percentunit", w=6, desc="A miss is a new session or one moved to another account (its bound account was full or cooling down)."),
        panel("Tokens/s in and out (cached input separately)",
              [(f"sum by (kind) (rate(llmpool_tokens_total{{{ROUTE}, account=~\"$account\"}}[5m]))", "{{kind}}")], w=18),
        # per client (LlmClient): usage by team
        panel("Requests/s by client and status",
              [(f"sum by (client, status) (rate(llmpool_client_requests_total{{{CLIENT}}}[5m]))", "{{client}} {{status}}")], "reqps",
              desc="401/403/429 here are the client's own refusals: bad key, model not allowed, over its limits."),
        panel("Tokens/s by client",
              [(f"sum by (client, kind) (rate(llmpool_client_tokens_total{{{CLIENT}}}[5m]))", "{{client}} {{kind}}")]),
        panel("Client requests in the last minute vs limit",
              [(f"max by (client) (llmpool_client_usage{{{CLIENT}, window=\"requests_last_minute\"}})", "{{client}} used"),
               (f"max by (client) (llmpool_client_limit{{{CLIENT}, limit=\"requests_per_minute\"}})", "{{client}} limit")]),
        panel("Client tokens today vs daily limit",
              [(f"max by (client) (llmpool_client_usage{{{CLIENT}, window=\"tokens_today\"}})", "{{client}} used"),
               (f"max by (client) (llmpool_client_limit{{{CLIENT}, limit=\"daily_tokens\"}})", "{{client}} limit")]),
    ],
    [var("route", "label_values(llmpool_requests_total{namespace=~\"$namespace\"}, route)"),
     var("account", "label_values(llmpool_account_in_flight{namespace=~\"$namespace\"}, account)"),
     var("client", "label_values(llmpool_client_requests_total{namespace=~\"$namespace\"}, client)")],
)

GATEWAY = dashboard(
    "llmpool-gateway", "llmpool / Gateway",
    "The proxies as a service: traffic, errors, latency, streams, configuration and shared state.",
    [
        panel("Requests/s", [(f"sum(rate(llmpool_request_duration_seconds_count{{{SEL}}}[5m]))", "requests/s")], "reqps", w=8),
        panel("Replicas", [(f"count(llmpool_config_generation{{{SEL}}})", "replicas")], kind="stat", w=4),
        panel("Streams open", [(f"sum(llmpool_streams_open{{{SEL}}})", "streams")], w=6),
        panel("Shared state degraded (replicas on their local view)", [(f"sum(llmpool_state_degraded{{{SEL}}})", "degraded")], kind="stat", w=6),
        panel("Error ratio by kind",
              [(f"sum by (kind) (rate(llmpool_gateway_errors_total{{{SEL}}}[5m])) / scalar(sum(rate(llmpool_request_duration_seconds_count{{{SEL}}}[5m])))", "{{kind}}")], "percentunit"),
        panel("Latency to response head (p50, p95, p99)",
              [(f"histogram_quantile({q}, sum by (le) (rate(llmpool_request_duration_seconds_bucket{{{SEL}}}[5m])))", f"p{int(q * 100)}")
               for q in (0.5, 0.95, 0.99)], "s"),
        panel("Time to first token (p50, p95, p99)",
              [(f"histogram_quantile({q}, sum by (le) (rate(llmpool_upstream_first_byte_seconds_bucket{{{SEL}}}[5m])))", f"p{int(q * 100)}")
               for q in (0.5, 0.95, 0.99)], "s"),
        panel("Latency the gateway adds (p50, p99)",
              [(f"histogram_quantile({q}, sum by (le) (rate(llmpool_gateway_overhead_seconds_bucket{{{SEL}}}[5m])))", f"p{int(q * 100)}")
               for q in (0.5, 0.99)], "s",
              desc="Time in the pipeline (routing, admission, translation, accounting) minus time waiting on upstreams."),
        panel("Client connections open, and refused at the cap",
              [(f"sum(llmpool_client_connections_open{{{SEL}}})", "open"),
               (f"sum(rate(llmpool_client_connections_refused_total{{{SEL}}}[5m]))", "refused/s")],
              desc="Above --max-connections a new connection gets a 503 with Retry-After at once."),
        panel("Config reloads and rejects",
              [(f"sum by (result) (increase(llmpool_config_reloads_total{{{SEL}}}[1h]))", "{{result}}"),
               (f"max(llmpool_config_generation{{{SEL}}})", "generation")]),
    ],
)

OPERATOR = dashboard(
    "llmpool-operator", "llmpool / Operator",
    "Reconciles, their errors and durations, writes, OAuth refreshes and leadership.",
    [
        panel("Reconciles by result", [(f"sum by (result) (rate(llmpool_operator_reconciles_total{{{SEL}}}[5m]))", "{{result}}")], "ops"),
        panel("Reconcile errors by kind", [(f"sum by (kind) (increase(llmpool_operator_reconcile_errors_total{{{SEL}}}[1h]))", "{{kind}}")]),
        panel("Reconcile duration (p50, p99)",
              [(f"histogram_quantile({q}, sum by (le) (rate(llmpool_operator_reconcile_duration_seconds_bucket{{{SEL}}}[5m])))", f"p{int(q * 100)}")
               for q in (0.5, 0.99)], "s"),
        panel("Object writes and status patches",
              [(f"sum(rate(llmpool_operator_object_writes_total{{{SEL}}}[5m]))", "object writes"),
               (f"sum(rate(llmpool_operator_status_patches_total{{{SEL}}}[5m]))", "status patches")], "ops"),
        panel("OAuth refreshes by result", [(f"sum by (result) (increase(llmpool_operator_oauth_refreshes_total{{{SEL}}}[1h]))", "{{result}}")]),
        panel("Leader", [(f"max(llmpool_operator_leader{{{SEL}}})", "leading replicas")], kind="stat", w=6),
        panel("Tables too large", [(f"max(llmpool_operator_tables_too_large{{{SEL}}})", "namespaces")], kind="stat", w=6),
        panel("Cooldown resets", [(f"sum(increase(llmpool_operator_cooldown_resets_total{{{SEL}}}[1h]))", "resets")], w=12),
    ],
)

ALERTS = [
    {"alert": "LlmpoolAllAccountsBusy",
     "expr": "sum by (namespace) (rate(llmpool_gateway_errors_total{kind=\"all_busy\"}[5m])) > 0",
     "for": "5m", "labels": {"severity": "warning"},
     "annotations": {"summary": "Requests are refused because every account of a route is cooling down or at its limits",
                     "description": "Add accounts or capacity, or check the pool dashboard's cooldown causes."}},
    {"alert": "LlmpoolAccountBlocked",
     "expr": "max by (namespace, account) (llmpool_account_blocked) == 1",
     "for": "10m", "labels": {"severity": "warning"},
     "annotations": {"summary": "Account {{ $labels.account }} is blocked (credentials refused or quota exhausted)",
                     "description": "Fix its credentials or quota; it is re-probed after cooldown.max."}},
    {"alert": "LlmpoolAccountCoolingDownLong",
     "expr": "max by (namespace, account) (llmpool_account_cooldown_seconds) > 600",
     "for": "15m", "labels": {"severity": "info"},
     "annotations": {"summary": "Account {{ $labels.account }} has been cooling down (rate limits or an open breaker) for a long time"}},
    {"alert": "LlmpoolStateDegraded",
     "expr": "max by (namespace) (llmpool_state_degraded) == 1",
     "for": "2m", "labels": {"severity": "warning"},
     "annotations": {"summary": "Proxies cannot reach Redis and serve on their local view; limits are shared out approximately"}},
    {"alert": "LlmpoolOAuthRefreshFailing",
     "expr": "sum by (namespace) (increase(llmpool_operator_oauth_refreshes_total{result=\"error\"}[30m])) > 0",
     "for": "15m", "labels": {"severity": "warning"},
     "annotations": {"summary": "OAuth token refreshes are failing; see the account's status.oauth.lastError"}},
    {"alert": "LlmpoolConfigRejected",
     "expr": "sum by (namespace) (increase(llmpool_config_reloads_total{result=\"rejected\"}[15m])) > 0 or max by (namespace) (llmpool_operator_tables_too_large) > 0",
     "for": "1m", "labels": {"severity": "warning"},
     "annotations": {"summary": "A configuration change was rejected; the last good one is still served"}},
]


def main():
    # with a directory argument everything is written there (the chart test
    # compares that with the committed files)
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else None
    for name, d in (("pool", POOL), ("gateway", GATEWAY), ("operator", OPERATOR)):
        ((out or HERE) / f"{name}.json").write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    rules = {"groups": [{"name": "llmpool", "rules": ALERTS}]}
    ((out or HERE.parent / "files") / "alerts.json").write_text(json.dumps(rules, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
