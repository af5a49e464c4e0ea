from .config_check import check_config
from .inference import extract_dense_features, init_model
from .model_conversion import (Conversion, ConversionError, densevit_to_timm,
                               extract_backbone, timm_to_densevit)
from .runner_setup import (adapt_to_device, add_runner_arguments,
                           apply_cli_options, build_runner,
                           relax_worker_settings, report_metrics)

__all__ = [
    'check_config', 'apply_cli_options', 'adapt_to_device', 'build_runner',
    'report_metrics', 'add_runner_arguments', 'relax_worker_settings',
    'init_model', 'extract_dense_features', 'Conversion', 'ConversionError',
    'densevit_to_timm', 'extract_backbone', 'timm_to_densevit'
]
