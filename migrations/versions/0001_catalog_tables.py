"""catalog tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('category',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phase', sa.Integer(), nullable=False),
    sa.Column('max_tokens', sa.Integer(), nullable=False),
    sa.Column('temperature', sa.Float(), nullable=False),
    sa.Column('top_p', sa.Float(), nullable=False),
    sa.Column('stop', sa.JSON(), nullable=True),
    sa.Column('sample_limit', sa.Integer(), nullable=False),
    sa.Column('timeout_s', sa.Float(), nullable=False),
    sa.CheckConstraint("status IN ('operational', 'planned')", name='ck_category_status'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('dataset',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('hub_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('config', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('split', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('task_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('primary_metric', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('license', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('needs_data_file', sa.Boolean(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('license',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('family', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('commercial_use', sa.Boolean(), nullable=False),
    sa.Column('url', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.CheckConstraint("family IN ('permissive', 'restricted-open', 'non-commercial', 'proprietary', 'unknown')", name='ck_license_family'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('preset',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('gpu_memory_utilization', sa.Float(), nullable=False),
    sa.Column('max_num_seqs', sa.Integer(), nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('swap_space_gb', sa.Float(), nullable=False),
    sa.Column('cpu_offload_gb', sa.Float(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.CheckConstraint('gpu_memory_utilization > 0 AND gpu_memory_utilization <= 1', name='ck_preset_gpu_util'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('size_bucket',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('min_params_b', sa.Float(), nullable=False),
    sa.Column('max_params_b', sa.Float(), nullable=True),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('category_dataset',
    sa.Column('category_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dataset_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.CheckConstraint("role IN ('primary', 'optional')", name='ck_category_dataset_role'),
    sa.ForeignKeyConstraint(['category_id'], ['category.id'], ),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ),
    sa.PrimaryKeyConstraint('category_id', 'dataset_id')
    )
    op.create_table('model',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('hub_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('revision', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('family', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('architecture', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('params_b', sa.Float(), nullable=False),
    sa.Column('active_params_b', sa.Float(), nullable=True),
    sa.Column('weights_gb', sa.Float(), nullable=True),
    sa.Column('native_context', sa.Integer(), nullable=False),
    sa.Column('max_context', sa.Integer(), nullable=False),
    sa.Column('rope_scaling', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('license_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('license_name', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('quantization', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('quantized_hub_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('gated', sa.Boolean(), nullable=False),
    sa.Column('release_date', sa.Date(), nullable=True),
    sa.Column('trust_remote_code', sa.Boolean(), nullable=False),
    sa.Column('dtype', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('chat_template', sa.Boolean(), nullable=False),
    sa.Column('num_layers', sa.Integer(), nullable=True),
    sa.Column('hidden_size', sa.Integer(), nullable=True),
    sa.Column('num_attention_heads', sa.Integer(), nullable=True),
    sa.Column('num_kv_heads', sa.Integer(), nullable=True),
    sa.Column('head_dim', sa.Integer(), nullable=True),
    sa.Column('vocab_size', sa.Integer(), nullable=True),
    sa.Column('subcategory', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('primary_use_cases', sa.JSON(), nullable=True),
    sa.Column('preset_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('priority', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('agent_optimized', sa.Boolean(), nullable=False),
    sa.Column('agent_temperature', sa.Float(), nullable=True),
    sa.Column('max_function_calls_per_turn', sa.Integer(), nullable=True),
    sa.Column('evaluation_batch_size', sa.Integer(), nullable=False),
    sa.Column('max_model_len', sa.Integer(), nullable=True),
    sa.Column('gpu_memory_utilization', sa.Float(), nullable=True),
    sa.Column('sources', sa.JSON(), nullable=True),
    sa.Column('notes', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.CheckConstraint("kind IN ('causal-lm', 'encoder', 'encoder-decoder', 'vision-language')", name='ck_model_kind'),
    sa.CheckConstraint("quantization IN ('none', 'awq', 'gptq', 'fp8', 'int8')", name='ck_model_quantization'),
    sa.CheckConstraint('max_context >= native_context', name='ck_model_context_order'),
    sa.CheckConstraint('params_b > 0', name='ck_model_params_positive'),
    sa.ForeignKeyConstraint(['license_id'], ['license.id'], ),
    sa.ForeignKeyConstraint(['preset_id'], ['preset.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hub_id', 'quantization', name='uq_model_deployment')
    )
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.create_index('ix_model_family', ['family'], unique=False)
        batch_op.create_index('ix_model_license_context', ['license_id', 'max_context'], unique=False)
        batch_op.create_index('ix_model_max_context', ['max_context'], unique=False)
        batch_op.create_index('ix_model_params_b', ['params_b'], unique=False)

    op.create_table('category_model',
    sa.Column('category_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('model_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['category.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], ),
    sa.PrimaryKeyConstraint('category_id', 'model_id')
    )
    with op.batch_alter_table('category_model', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_category_model_model_id'), ['model_id'], unique=False)
        batch_op.create_index('ux_category_model_one_primary', ['model_id'], unique=True, sqlite_where=sa.text('is_primary'), postgresql_where=sa.text('is_primary'))

    op.create_table('published_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('dataset_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('metric', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'dataset_id', 'metric', name='uq_published_result')
    )


def downgrade() -> None:
    op.drop_table('published_result')
    with op.batch_alter_table('category_model', schema=None) as batch_op:
        batch_op.drop_index('ux_category_model_one_primary', sqlite_where=sa.text('is_primary'), postgresql_where=sa.text('is_primary'))
        batch_op.drop_index(batch_op.f('ix_category_model_model_id'))

    op.drop_table('category_model')
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.drop_index('ix_model_params_b')
        batch_op.drop_index('ix_model_max_context')
        batch_op.drop_index('ix_model_license_context')
        batch_op.drop_index('ix_model_family')

    op.drop_table('model')
    op.drop_table('category_dataset')
    op.drop_table('size_bucket')
    op.drop_table('preset')
    op.drop_table('license')
    op.drop_table('dataset')
    op.drop_table('category')
