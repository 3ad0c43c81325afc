"""Fixed vocabularies shared by the schema (CHECK constraints), the fixture validator and the CLI."""

MODEL_KINDS = ("causal-lm", "encoder", "encoder-decoder", "vision-language")
QUANTIZATIONS = ("none", "awq", "gptq", "fp8", "int8")
# "unknown" is for models whose hub card carries no licence tag (the hub's own `unknown` id).
LICENSE_FAMILIES = ("permissive", "restricted-open", "non-commercial", "proprietary", "unknown")
CATEGORY_STATUSES = ("operational", "planned")
DATASET_ROLES = ("primary", "optional")
PRIORITIES = ("high", "medium", "low")
OUTPUT_FORMATS = ("table", "markdown", "csv", "json")
RUN_STATUSES = ("queued", "running", "completed", "failed", "interrupted")
