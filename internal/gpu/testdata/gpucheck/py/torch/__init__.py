"""Fake torch for TestGPUCheckScript: just enough of the API workload.py uses."""
__version__ = "0.0+fake"
float32 = "float32"


class _Tensor:
    def fill_(self, v):
        return self

    def to(self, device):
        return self


def empty(*args, **kwargs):
    return _Tensor()


def frombuffer(*args, **kwargs):
    return _Tensor()


class cuda:
    @staticmethod
    def is_available():
        return True

    @staticmethod
    def set_device(dev):
        pass

    @staticmethod
    def synchronize():
        pass

    @staticmethod
    def get_device_name(dev):
        return "NVIDIA H100 80GB HBM3"

    @staticmethod
    def memory_allocated(dev):
        return 1 << 30
