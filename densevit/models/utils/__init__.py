from .feature_rank import effective_dims
from .key_encoder_ema import KeyEncoderEMA
from .memory_queue import MemoryQueue

__all__ = ['KeyEncoderEMA', 'MemoryQueue', 'effective_dims']
