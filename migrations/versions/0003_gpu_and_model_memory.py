"""gpu table and the model_memory view (memory planner)

``model_memory`` has one row per model and quantization (none, fp8, int8, awq, gptq) with the
per-model terms of the memory estimate: weights, KV-cache bytes per token, runtime overhead.
The constants are those of catalog/memory.py (documented in docs/memory.md); they are written
out here so that this migration stays what it was when it ran, and tests/test_memory.py
checks that the view and catalog/memory.py agree.  The SQL runs unchanged on SQLite and
PostgreSQL: every division has a floating-point operand, and no boolean is compared.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# catalog/memory.py: BYTES_PER_PARAM, MLA_LATENT_DIM, KV_CACHE_BYTES, NON_TORCH_GB,
# CUDA_GRAPH_GB, PROFILE_TOKENS x ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN.
INT4 = 0.5 + 2.5 / 128

MODEL_MEMORY = f"""
SELECT b.model_id, b.quantization, b.weight_format, b.repo, b.weights_source,
       b.not_estimated,
       b.params_b,
       CASE WHEN b.not_estimated IS NULL THEN b.embedding_params_b END AS embedding_params_b,
       CASE WHEN b.not_estimated IS NULL THEN
            CASE WHEN b.quantization = 'none' THEN b.params_b * CAST(2 AS DOUBLE PRECISION)
                 ELSE (b.params_b - b.embedding_params_b) * b.bytes_per_param
                      + b.embedding_params_b * CAST(2 AS DOUBLE PRECISION)
            END
       END AS weights_gb,
       CASE WHEN b.not_estimated IS NULL THEN b.kv_bytes_per_token END AS kv_bytes_per_token,
       CASE WHEN b.not_estimated IS NULL THEN
            CAST(b.kv_bytes_per_token AS DOUBLE PRECISION) * 1000 / CAST(1000000000 AS DOUBLE PRECISION)
       END AS kv_gb_per_1k_tokens,
       CASE WHEN b.not_estimated IS NULL THEN
            CAST(3 AS DOUBLE PRECISION)
            + CAST(b.hidden_size AS DOUBLE PRECISION) * 8192 * 40 / CAST(1000000000 AS DOUBLE PRECISION)
       END AS overhead_gb,
       b.attention, b.num_layers, b.hidden_size, b.num_attention_heads, b.num_kv_heads, b.head_dim,
       b.vocab_size, b.max_context, b.max_model_len, b.gpu_memory_utilization, b.max_num_seqs
FROM (
    SELECT m.id AS model_id, q.quantization, q.weight_format, q.bytes_per_param, q.sort_order,
           CASE WHEN q.quantization = 'none' THEN m.hub_id
                WHEN q.quantization = m.quantization THEN m.quantized_hub_id
                WHEN q.quantization = 'fp8' THEN m.hub_id
           END AS repo,
           CASE WHEN q.quantization = 'none' THEN 'original'
                WHEN q.quantization = m.quantization THEN 'quantized repo'
                WHEN q.quantization = 'fp8' THEN 'vLLM online fp8'
           END AS weights_source,
           CASE WHEN m.kind = 'encoder'
                     THEN 'encoder: it cannot generate, so vLLM keeps no KV cache for it'
                WHEN m.kind = 'encoder-decoder'
                     THEN 'encoder-decoder: the encoder and the cross-attention cache are not modelled'
                WHEN m.num_layers IS NULL OR m.hidden_size IS NULL OR m.num_attention_heads IS NULL
                     OR m.num_kv_heads IS NULL OR m.head_dim IS NULL
                     THEN 'architecture facts missing (num_layers, hidden_size, heads, head_dim)'
                WHEN q.quantization <> 'none' AND m.kind = 'vision-language'
                     THEN 'quantized vision-language model: the vision tower''s share of the parameters is not catalogued, and quantized repos keep it in 16-bit'
                WHEN q.quantization <> 'none' AND m.vocab_size IS NULL
                     THEN 'vocab_size unknown, so the 16-bit embedding and lm_head cannot be sized'
           END AS not_estimated,
           m.params_b,
           CAST(m.vocab_size AS DOUBLE PRECISION) * m.hidden_size * 2 / CAST(1000000000 AS DOUBLE PRECISION)
               AS embedding_params_b,
           CASE WHEN m.architecture IN ('DeepseekV2ForCausalLM', 'DeepseekV3ForCausalLM')
                     THEN m.num_layers * 576 * 2
                ELSE 2 * m.num_layers * m.num_kv_heads * m.head_dim * 2
           END AS kv_bytes_per_token,
           CASE WHEN m.architecture IN ('DeepseekV2ForCausalLM', 'DeepseekV3ForCausalLM') THEN 'mla'
                WHEN m.num_kv_heads < m.num_attention_heads THEN 'gqa'
                ELSE 'mha'
           END AS attention,
           m.num_layers, m.hidden_size, m.num_attention_heads, m.num_kv_heads, m.head_dim, m.vocab_size,
           m.max_context, m.max_model_len,
           COALESCE(m.gpu_memory_utilization, p.gpu_memory_utilization) AS gpu_memory_utilization,
           p.max_num_seqs
    FROM model m
    JOIN preset p ON p.id = m.preset_id
    CROSS JOIN (
        SELECT 'none' AS quantization, 'bf16/fp16' AS weight_format,
               CAST(2 AS DOUBLE PRECISION) AS bytes_per_param, 1 AS sort_order
        UNION ALL SELECT 'fp8', 'fp8', CAST(1 AS DOUBLE PRECISION), 2
        UNION ALL SELECT 'int8', 'int8 W8A8', CAST(1 AS DOUBLE PRECISION), 3
        UNION ALL SELECT 'awq', 'int4 g128 AWQ', CAST({INT4!r} AS DOUBLE PRECISION), 4
        UNION ALL SELECT 'gptq', 'int4 g128 GPTQ', CAST({INT4!r} AS DOUBLE PRECISION), 5
    ) q
) b
"""


def upgrade() -> None:
    op.create_table('gpu',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('architecture', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('memory_gb', sa.Float(), nullable=False),
    sa.Column('memory_mib', sa.Integer(), nullable=False),
    sa.Column('bf16', sa.Boolean(), nullable=False),
    sa.Column('fp8', sa.Boolean(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('memory_source', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('notes', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.CheckConstraint('memory_gb > 0 AND memory_mib > 0', name='ck_gpu_memory_positive'),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute(f"CREATE VIEW model_memory AS {MODEL_MEMORY}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS model_memory")
    op.drop_table('gpu')
