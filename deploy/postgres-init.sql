-- One database per service; each service's own Alembic history creates its tables.
CREATE DATABASE kpi_ingest;
CREATE DATABASE kpi_scoring;
CREATE DATABASE kpi_reporting;
