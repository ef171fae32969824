"""Stage 1 of the pipeline: the fact catalogs (facts/*.yaml), typed and validated."""

from .load import CATALOG_FILES, load_catalog
from .model import QUALITY_LEVELS, VERIFICATION, Catalog, Energy, Gpu, Model, Precision, Source, count_params
from .provenance import SourceReport, source_report

__all__ = ["CATALOG_FILES", "QUALITY_LEVELS", "VERIFICATION", "Catalog", "Energy", "Gpu", "Model", "Precision",
           "Source", "SourceReport", "count_params", "load_catalog", "source_report"]
