from .memory_queue import MemoryQueue

__all__ = ['MemoryQueue']
