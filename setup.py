import os.path as osp

from setuptools import find_packages, setup


def read_requirements(*names):
    """Collect requirement lines from files under requirements/."""
    reqs = []
    for name in names:
        with open(osp.join('requirements', name)) as f:
            for line in f:
                line = line.split('#')[0].strip()
                if line and not line.startswith('-r'):
                    reqs.append(line)
    return reqs


def get_version():
    scope = {}
    with open(osp.join('densevit', 'version.py')) as f:
        exec(compile(f.read(), 'densevit/version.py', 'exec'), scope)
    return scope['__version__']


setup(
    name='densevit',
    version=get_version(),
    description='Dense contrastive self-supervised learning for Vision '
    'Transformers, in the MMEngine/MMPretrain style',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    python_requires='>=3.9',
    install_requires=read_requirements('runtime.txt', 'mminstall.txt'),
    extras_require={
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
    },
    zip_safe=False,
)
