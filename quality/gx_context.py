"""One ephemeral GX context per task: analytics and progress bars off, an optional Data Docs
site on disk (staging/<source>/<run>/data_docs)."""
from __future__ import annotations

import os
from pathlib import Path

RESULT_FORMAT = {"result_format": "COMPLETE", "include_unexpected_rows": False,
                 "return_unexpected_index_query": False, "partial_unexpected_count": 20}
SITE = "run"


def _keep_templates_compiled() -> None:
    """GX's Data Docs views compile their Jinja templates afresh on every build (about 0.7 s);
    Jinja's own bytecode cache (per user, in the temp directory) keeps them compiled."""
    from great_expectations.render.view import view  # lazy: GX takes seconds to import
    from jinja2 import FileSystemBytecodeCache

    cls = view.DefaultJinjaView
    if getattr(cls, "_bytecode_cache", None) is not None:
        return
    cls._bytecode_cache, init = FileSystemBytecodeCache(), cls.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.env.bytecode_cache = cls._bytecode_cache

    cls.__init__ = __init__


class Gx:
    def __init__(self, docs_dir: Path | None = None):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx  # lazy: GX takes seconds to import (after the env above)
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every in-memory frame by hashing it whole (0.9 s per 200k rows);
        # our batches are identified by their run, so the fingerprint is turned off.
        pandas_execution_engine.HASH_THRESHOLD = 0
        _keep_templates_compiled()
        sites = {}
        if docs_dir is not None:
            sites[SITE] = {"class_name": "SiteBuilder", "show_how_to_buttons": False,
                           "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                             "base_directory": str(docs_dir)},
                           "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
        cfg = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(),
                                analytics_enabled=False, data_docs_sites=sites,
                                progress_bars=ProgressBarsConfig(globally=False))
        self.context = gx.get_context(project_config=cfg, mode="ephemeral")
        self.docs_dir = docs_dir
        self._keys: list = []
        asset = self.context.data_sources.add_pandas("exchange").add_dataframe_asset("rows")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole")

    def validate(self, df, suite, parameters: dict | None = None):
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": df})
        result = batch.validate(suite, result_format=RESULT_FORMAT,
                                expectation_parameters=parameters or {})
        return result

    def keep(self, result, keep_as: str) -> None:
        """Keep a result for this run's Data Docs, without its full per-row lists (the
        quarantine file holds the rows; counts, percentages and partial lists stay)."""
        if self.docs_dir is None:
            return
        for r in result.results:
            for k in ("unexpected_list", "unexpected_index_list"):
                (r.result or {}).pop(k, None)
        self._keep(result, result.suite_name, keep_as)

    def _keep(self, result, suite_name: str, batch_name: str) -> None:
        from great_expectations.core.run_identifier import RunIdentifier  # lazy: GX takes seconds to import
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(suite_name),
                                         RunIdentifier(run_name="run"), batch_identifier=batch_name)
        self.context.validation_results_store.set(key, result)
        self._keys.append(key)

    def build_docs(self) -> Path | None:
        """The run's Data Docs site; returns its index.html."""
        if self.docs_dir is None or not self._keys:
            return None
        self.context.build_data_docs(site_names=[SITE], resource_identifiers=self._keys)
        return self.docs_dir / "index.html"
