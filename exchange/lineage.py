"""OpenLineage for the source DAGs, through Airflow's OpenLineage provider.

The extract and publish tasks note what they read and wrote (`noted`, in the task's own
process); `SourceTaskExtractor`, the provider's extractor for TaskFlow tasks (airflow.cfg
[openlineage] extractors), puts it on the task's COMPLETE event:
- extract: input = the silo (named per https://openlineage.io/docs/spec/naming, never with
  credentials), facets schema (the mapped silo columns) and inputStatistics (rows extracted);
- publish: input = the silo, facets dataQualityMetrics (rows checked) and dataQualityAssertions
  (each quarantine reason, failed); output = the published dataset (namespace
  EXCHANGE_LINEAGE_NAMESPACE, name the dataset id), facets schema (the certificate type's
  fields), outputStatistics (records in the version) and version.
Without a transport the provider is disabled and `noted` does nothing (no event, no network).
"""
from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from airflow.providers.openlineage import conf
from airflow.providers.openlineage.extractors.base import BaseExtractor, OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    input_statistics_input_dataset,
    output_statistics_output_dataset,
    schema_dataset,
)
from openlineage.client.naming import dataset as naming

from base.settings import get_settings
from catalog.ledger.service import Ledger
from connectors import credentials
from registration import Registration
from registration.connector import settings_for

log = logging.getLogger(__name__)
DAG_PREFIX = "source__"
DEFAULT_PORTS = {"postgresql": "5432", "mysql": "3306"}
_NOTED: dict[tuple, OperatorLineage] = {}       # per task instance, until its COMPLETE event


def silo_dataset(reg: Registration) -> tuple[str, str]:
    """(namespace, name) of the source's silo: host, port, database and table or path only."""
    s = settings_for(reg.connector, f"source {reg.id}")
    kind = reg.connector["kind"]
    if kind == "sql":
        return _sql_dataset(credentials.sql_url(s.conn_id, s.url, reg.id), s.table)
    if kind == "http":
        url = urlsplit(s.url or credentials.airflow_connection(s.conn_id, reg.id).host or "")
        path = url.path.rstrip("/") + "/" + s.path.lstrip("/") if s.path else url.path
        host = url.hostname or ""
        authority = f"{host}:{url.port}" if url.port else host
        return f"{url.scheme}://{authority}", path or "/"          # no user, password or query
    if "://" in s.path:                                  # a drop folder given as a URL
        url = urlsplit(s.path)
        return f"{url.scheme}://{url.hostname or ''}", url.path
    folder = naming.LocalFileSystem(path=s.path)
    return folder.get_namespace(), folder.get_name()


def _sql_dataset(url, table: str) -> tuple[str, str]:
    backend = url.get_backend_name()
    schema, _, name = table.rpartition(".")
    if backend == "sqlite":
        return f"sqlite://{url.database}", f"{schema or 'main'}.{name}"
    port = str(url.port or DEFAULT_PORTS.get(backend, ""))
    if backend == "postgresql":
        pg = naming.Postgres(host=url.host, port=port, database=url.database, schema=schema or "public",
                             table=name)
        return pg.get_namespace(), pg.get_name()
    if backend == "mysql":
        my = naming.MySQL(host=url.host, port=port, database=url.database, table=name)
        return my.get_namespace(), my.get_name()
    return f"{backend}://{url.host}:{port}", f"{url.database}.{table}"


def published_dataset(reg: Registration) -> tuple[str, str]:
    return get_settings().lineage_namespace, reg.dataset


def extracted(reg: Registration, result: dict) -> OperatorLineage:
    """The extract task's lineage: the silo read, its mapped columns, the rows taken."""
    namespace, name = silo_dataset(reg)
    types = _silo_types(result.get("run_id"))
    fields = [schema_dataset.SchemaDatasetFacetFields(name=c, type=types.get(c) or None)
              for c in sorted(set(reg.mapping.values()))]
    silo = InputDataset(namespace, name, facets={"schema": schema_dataset.SchemaDatasetFacet(fields=fields)},
                        inputFacets={"inputStatistics": input_statistics_input_dataset
                                     .InputStatisticsInputDatasetFacet(rowCount=result["rows"])})
    return OperatorLineage(inputs=[silo])


def _silo_types(run_id: int | None) -> dict[str, str]:
    """The silo's column types as the run recorded them (SQL silos); none if not recorded."""
    if run_id is None:
        return {}
    try:
        return {k: str(v) for k, v in (Ledger(get_settings().catalog_url).run_quality(run_id)
                                       .get("silo_columns") or {}).items()}
    except Exception as exc:  # noqa: BLE001 - lineage never fails a run
        log.warning("lineage: silo column types of run %s not read: %s", run_id, exc)
        return {}


def published(reg: Registration, key: str, result: dict) -> OperatorLineage:
    """The publish task's lineage: the silo's checked rows in, the dataset's version out."""
    run = Ledger(get_settings().catalog_url).get_run(reg.id, key)
    namespace, name = silo_dataset(reg)
    assertions = [data_quality_assertions_dataset.Assertion(assertion=reason, success=False,
                                                            column=_column_of(reason))
                  for reason in sorted(run.reasons or {})]
    silo = InputDataset(namespace, name, facets={
        "dataQualityAssertions": data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=assertions)},
        inputFacets={"dataQualityMetrics": data_quality_metrics_input_dataset
                     .DataQualityMetricsInputDatasetFacet(columnMetrics={}, rowCount=run.extracted)})
    out_ns, out_name = published_dataset(reg)
    fields = [schema_dataset.SchemaDatasetFacetFields(name=f.name, type=f.type, description=f.title or None)
              for f in reg.ctype.fields]
    facets: dict = {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)}
    if result.get("version") is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(result["version"]))
    output_facets = {}
    if result.get("appended") is not None:     # the record states this run appended to the log
        output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=result["appended"])
    return OperatorLineage(inputs=[silo], outputs=[OutputDataset(out_ns, out_name, facets=facets,
                                                                 outputFacets=output_facets)])


def _column_of(reason: str) -> str | None:
    found = re.search(r"\(([^()]+)\)\s*$", reason)
    return found.group(1) if found else None


BUILDERS = {"extract": lambda reg, key, result: extracted(reg, result), "publish": published}


def noted(reg: Registration, task: str, key: str, result: dict) -> dict:
    """Keep this task instance's lineage for its COMPLETE event; returns `result` unchanged.
    Nothing is done while OpenLineage is off, and a failure here never fails the task."""
    if conf.is_disabled():
        return result
    try:
        from airflow.sdk import get_current_context  # lazy: only inside a task

        ti = get_current_context()["ti"]
        _NOTED[_ti_key(ti)] = BUILDERS[task](reg, key, result)
    except Exception as exc:  # noqa: BLE001 - lineage never fails a run
        log.warning("lineage: %s of source %s not noted: %s: %s", task, reg.id, type(exc).__name__, exc)
    return result


def _ti_key(ti) -> tuple:
    return ti.dag_id, ti.task_id, ti.run_id, ti.map_index


class SourceTaskExtractor(BaseExtractor):
    """The provider's extractor for TaskFlow tasks: what a source DAG's task noted, on its
    COMPLETE event; nothing else (the provider's own facets still come)."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator"]

    def _execute_extraction(self) -> OperatorLineage | None:
        return OperatorLineage()

    def extract_on_complete(self, task_instance) -> OperatorLineage | None:
        if not task_instance.dag_id.startswith(DAG_PREFIX):
            return OperatorLineage()
        return _NOTED.pop(_ti_key(task_instance), None) or OperatorLineage()

    def extract_on_failure(self, task_instance) -> OperatorLineage | None:
        return OperatorLineage()
