"""Exports known HTTP server durations to a Vitals collector with the real
OpenTelemetry Python SDK, as the collector's OTLP tests ask.

Arguments: endpoint, key, service, temporality (delta|cumulative),
aggregation (explicit|exponential), encoding (protobuf|json), and the
rounds as JSON: a list of rounds, each a list of [method, route, status,
seconds]. Each round is recorded, then exported. With protobuf the SDK's
own OTLP/HTTP exporter sends it (gzip); with json the SDK's encoder builds
the same request and protobuf's JSON mapping (as OTLP/JSON asks: lower
camel case keys, enums as integers, 64-bit integers as strings) writes it.
Exits non-zero if any export did not succeed.
"""

import json
import sys
import urllib.request

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

endpoint, key, service, temporality, aggregation, encoding, rounds = sys.argv[1:8]
rounds = json.loads(rounds)
temp = {
    "delta": AggregationTemporality.DELTA,
    "cumulative": AggregationTemporality.CUMULATIVE,
}[temporality]
preferred = {Histogram: temp, Counter: temp}
views = []
if aggregation == "exponential":
    views = [
        View(
            instrument_name="http.server.request.duration",
            aggregation=ExponentialBucketHistogramAggregation(),
        )
    ]
results = []


class Checked(OTLPMetricExporter):
    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        r = super().export(metrics_data, timeout_millis, **kwargs)
        results.append(r == MetricExportResult.SUCCESS)
        return r


if encoding == "protobuf":
    exporter = Checked(
        endpoint=endpoint,
        headers={"Authorization": "Bearer " + key},
        preferred_temporality=preferred,
        compression=Compression.Gzip,
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
else:
    reader = InMemoryMetricReader(preferred_temporality=preferred)

resource = Resource.create({"service.name": service, "service.instance.id": "py-1"})
provider = MeterProvider(metric_readers=[reader], resource=resource, views=views)
meter = provider.get_meter("vitals-otlp-test")
duration = meter.create_histogram(
    "http.server.request.duration",
    unit="s",
    description="Duration of HTTP server requests.",
    # The semantic conventions' advice.
    explicit_bucket_boundaries_advisory=[
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
    ],
)
orders = meter.create_counter("orders", unit="{order}")

for r in rounds:
    for method, route, status, seconds in r:
        duration.record(
            seconds,
            {
                "http.request.method": method,
                "http.route": route,
                "http.response.status_code": status,
                "url.scheme": "http",
            },
        )
    orders.add(len(r), {"shop": "eu"})
    if encoding == "protobuf":
        provider.force_flush()
    else:
        request = encode_metrics(reader.get_metrics_data())
        body = json_format.MessageToJson(request, use_integers_for_enums=True).encode()
        req = urllib.request.Request(
            endpoint,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + key},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read() or b"{}")
            print("answer", resp.status, answer)
            results.append(resp.status == 200 and "partialSuccess" not in answer)

provider.shutdown()
print("exports", results)
sys.exit(0 if results and all(results) else 1)
