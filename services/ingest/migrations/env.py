from kpi_common.migrations import run_env
from kpi_ingest.adapters.orm import metadata

run_env(metadata)
