from .key_encoder_ema import KeyEncoderEMA
from .memory_queue import MemoryQueue

__all__ = ['KeyEncoderEMA', 'MemoryQueue']
