"""Cluster launches on one machine, with gloo: two torchrun "nodes" through
tools/dist_train.sh, a killed rank replaced by ``torchrun --max-restarts``
(``MAX_RESTARTS``), and tools/slurm_train.sh under a stand-in ``srun``.

All train the same 2-rank job: 16 images in a fixed order (no shuffle), both
views the whole image (nothing random in the data), 2 images per rank and
step, 4 steps, a checkpoint every 2 steps. So a run's result depends only on
the sampler's sharding and on the weights, and the two-node run is the
reference the others must reproduce exactly.
"""
import os
import signal
import subprocess
import sys

import pytest
import torch
from launch_helpers import (QUEUE_RECORDER, REPO_ROOT, TINY_OVERRIDES,
                            free_port, tool_env)
from mmengine.config import Config

from densevit.apis import apply_cli_options

QUEUES = ('global_loss', 'dense_loss')

DIST_CONFIG = TINY_OVERRIDES + """
custom_imports = dict(imports=['queue_recorder'])
train_dataloader = dict(
    batch_size=2,
    sampler=dict(shuffle=False),
    dataset=dict(num_samples=16, pipeline=[
        dict(type='TwoViewCrop', size=64, scale=(1.0, 1.0),
             ratio=(1.0, 1.0), flip_prob=0.0),
        dict(type='PackDenseInputs')]))
# The model's hooks; not the probes, which are not what these tests check.
custom_hooks = [
    *[hook for hook in _base_.custom_hooks if hook['type'] != 'ProbeHook'],
    dict(type='QueueRecorder')]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2))
train_cfg = dict(max_epochs=1)
"""

# Kills rank 1 (SIGKILL: no clean-up, as a lost machine) before its 4th
# step, on the first attempt only; the checkpoint of step 2 is the newest.
RANK_KILLER = """
import os
import signal

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from densevit.registry import HOOKS


@HOOKS.register_module()
class KillRankOnce(Hook):

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if (runner.iter == 3 and get_rank() == 1
                and os.environ['TORCHELASTIC_RESTART_COUNT'] == '0'):
            open(f'{runner.work_dir}/killed_at_iter_3', 'w').close()
            os.kill(os.getpid(), signal.SIGKILL)
"""

FAKE_SLURM = REPO_ROOT / 'tests/fake_slurm'


def write_job(folder, extra=''):
    """The job's config and hook modules in ``folder``; the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'queue_recorder.py').write_text(QUEUE_RECORDER)
    (folder / 'rank_killer.py').write_text(RANK_KILLER)
    config = folder / 'job.py'
    config.write_text(DIST_CONFIG + extra)
    return config


def start(command, folder, log_name, env):
    """Start ``command`` in its own process group, output to a log file."""
    with open(folder / log_name, 'w') as log:
        return subprocess.Popen(
            command, cwd=folder, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)


def finish(procs, folder, timeout=300):
    """Wait for ``procs``; on a failure or timeout end every group that was
    started and fail with the logs' ends. Returns the logs."""
    try:
        codes = [proc.wait(timeout=timeout) for proc in procs]
    except subprocess.TimeoutExpired:
        codes = None
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    logs = {log.name: log.read_text() for log in sorted(folder.glob('*.log'))}
    assert codes and not any(codes), {
        name: text[-3000:] for name, text in logs.items()}
    return logs


def job_env(folder, **variables):
    """The environment of a launch: the hook modules in ``folder`` on the
    path, and one thread per process in every run (torchrun sets it only
    for several processes per node, and the float sums of a matrix product
    depend on the number of threads, which would spoil exact
    comparisons)."""
    return tool_env(folder, OMP_NUM_THREADS=1, **variables)


def slurm_env(folder, **variables):
    """The environment of a job under the stand-in ``srun``: the master's
    address comes from ``scontrol``, as on a cluster."""
    env = job_env(folder, MASTER_PORT=free_port(),
                  PATH=f'{FAKE_SLURM}{os.pathsep}{os.environ["PATH"]}',
                  **variables)
    env.pop('MASTER_ADDR', None)
    return env


def final_state(work_dir):
    ckpt = torch.load(work_dir / 'iter_4.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 4
    return ckpt


@pytest.fixture(scope='module')
def two_nodes(tmp_path_factory):
    """The job on two nodes of one process each (``NNODES=2 NODE_RANK=0/1
    tools/dist_train.sh CONFIG 1``), and, at the same time, one process
    with the doubled batch (4 images per step)."""
    folder = tmp_path_factory.mktemp('two_nodes')
    config = write_job(folder)
    port = free_port()
    nodes = [
        start(['bash', str(REPO_ROOT / 'tools/dist_train.sh'), str(config),
               '1', '--work-dir', 'nodes'], folder, f'node{rank}.log',
              job_env(folder, NNODES=2, NODE_RANK=rank, PORT=port,
                      MASTER_ADDR='127.0.0.1'))
        for rank in range(2)
    ]
    single = start([sys.executable, str(REPO_ROOT / 'tools/train.py'),
                    str(config), '--work-dir', 'single', '--cfg-options',
                    'train_dataloader.batch_size=4'], folder, 'single.log',
                   job_env(folder))
    finish([*nodes, single], folder)
    return folder


def test_two_nodes_hold_identical_queues_and_enqueue_as_one_process(
        two_nodes):
    """Two nodes: every rank holds the same queues and key encoder, and the
    job enqueues what one process with the doubled batch enqueues.

    What is compared, and why it must agree: without shuffling,
    ``DefaultSampler`` gives rank r the images ``r, r + 2, ...``, so step s
    trains images ``4s..4s+3`` on both runs, rank 0 taking ``4s, 4s+2`` and
    rank 1 ``4s+1, 4s+3``; the ranks' keys are all-gathered in rank order,
    so the queue holds them as ``4s, 4s+2, 4s+1, 4s+3``. Both runs start
    from the same weights (seed 0) and queues, the views are the whole
    image, and a ViT encodes each image on its own (no BatchNorm), so the
    first step's keys agree; DDP averages the two ranks' gradients of
    per-rank means, which is the gradient of the mean over the 4 images
    (each image's loss depends only on it and the shared queues), so the
    following steps' weights and keys agree too. Agreement is up to float
    rounding (matrix products of 2 vs 4 rows, the gradient summed in
    another order), hence ``assert_close``; between the ranks of one run
    it is exact.
    """
    work_dir = two_nodes / 'nodes'
    ckpt = final_state(work_dir)
    # 4 steps x 4 keys (both ranks') per queue; both ranks' RNG states.
    for name in QUEUES:
        assert int(ckpt['state_dict'][f'{name}.queue.ptr']) == 16
    assert len(ckpt['rng_states']) == 2
    ranks = [torch.load(work_dir / f'queues_rank{rank}.pth',
                        weights_only=True) for rank in range(2)]
    for name in QUEUES:
        assert torch.equal(ranks[0]['queues'][name],
                           ranks[1]['queues'][name]), name
        assert torch.equal(ranks[0]['queues'][name],
                           ckpt['state_dict'][f'{name}.queue.keys'])
    assert ranks[0]['key_encoder'].keys() == ranks[1]['key_encoder'].keys()
    for key, value in ranks[0]['key_encoder'].items():
        assert torch.equal(value, ranks[1]['key_encoder'][key]), key
        assert torch.equal(value, ckpt['state_dict'][f'key_encoder.{key}'])

    single = torch.load(two_nodes / 'single/queues_rank0.pth',
                        weights_only=True)
    in_queue_order = [0, 2, 1, 3]
    for step in range(4):
        for name in QUEUES:
            gathered = torch.cat([r['steps'][step][name] for r in ranks])
            torch.testing.assert_close(
                gathered, single['steps'][step][name][in_queue_order])
    for name in QUEUES:
        queue = single['queues'][name][:16].view(4, 4, -1)
        torch.testing.assert_close(
            ranks[0]['queues'][name][:16],
            queue[:, in_queue_order].reshape(16, -1))
    single_state = final_state(two_nodes / 'single')['state_dict']
    for key, value in ckpt['state_dict'].items():
        if '.queue.' not in key:  # the queues: in their order, above
            torch.testing.assert_close(value, single_state[key], msg=key)


def test_killed_rank_is_replaced_and_the_job_resumes_exactly(
        two_nodes, tmp_path):
    """``MAX_RESTARTS=1 tools/dist_train.sh``: rank 1 is killed before its
    4th step; torchrun restarts both processes, which resume from the
    checkpoint of step 2 by themselves (TORCHELASTIC_RESTART_COUNT > 0),
    train steps 3 and 4 again and end with the weights, key encoder and
    queues of the run that was never killed (the two-node run: the same
    ranks, data and seed)."""
    config = write_job(tmp_path, extra="""
custom_imports = dict(imports=['queue_recorder', 'rank_killer'])
custom_hooks = [*custom_hooks, dict(type='KillRankOnce')]
""")
    job = start(['bash', str(REPO_ROOT / 'tools/dist_train.sh'), str(config),
                 '2', '--work-dir', 'work'], tmp_path, 'job.log',
                job_env(tmp_path, MAX_RESTARTS=1, PORT=free_port()))
    log = finish([job], tmp_path)['job.log']
    work_dir = tmp_path / 'work'
    assert (work_dir / 'killed_at_iter_3').exists()
    assert 'Resume: the newest checkpoint that loads is' in log
    assert 'resumed epoch: 0, iter: 2' in log
    # The restarted processes trained steps 3 and 4 only.
    for rank in range(2):
        recorded = torch.load(work_dir / f'queues_rank{rank}.pth',
                              weights_only=True)
        assert len(recorded['steps']) == 2
    restarted = final_state(work_dir)['state_dict']
    never_killed = final_state(two_nodes / 'nodes')['state_dict']
    assert restarted.keys() == never_killed.keys()
    for key, value in never_killed.items():
        assert torch.equal(restarted[key], value), key


def test_elastic_restart_resumes_once_the_work_dir_has_a_checkpoint(
        tmp_path):
    """A process torchrun restarted continues from the work dir's newest
    checkpoint, not from what the first attempt was told to start from;
    before the first save it starts as that attempt did."""
    def restarted(**options):
        return apply_cli_options(
            Config(dict(resume=False, load_from=None)), 'x.py',
            work_dir=str(tmp_path), elastic_restart=True, **options)

    cfg = restarted(resume='given.pth')
    assert cfg.resume is True and cfg.load_from == 'given.pth'
    cfg = restarted(cfg_options={'load_from': 'pretrained.pth'})
    assert cfg.resume is False and cfg.load_from == 'pretrained.pth'
    (tmp_path / 'last_checkpoint').write_text('iter_2.pth')
    for options in (dict(resume='given.pth'),
                    dict(cfg_options={'load_from': 'pretrained.pth'}), {}):
        cfg = restarted(**options)
        # load_from None: AtomicCheckpointHook picks the newest that loads.
        assert cfg.resume is True and cfg.load_from is None, options
    # The first attempt is not affected by the work dir's checkpoints.
    cfg = apply_cli_options(Config(dict(resume=False, load_from=None)),
                            'x.py', work_dir=str(tmp_path))
    assert cfg.resume is False


def test_slurm_train_sh_trains_the_job_as_torchrun_does(two_nodes, tmp_path):
    """tools/slurm_train.sh on a CPU machine, with stand-ins for ``srun``
    (local tasks with SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID/
    SLURM_NODELIST) and ``scontrol`` (the master's host name): mmengine's
    slurm launcher, through DenseViT's gloo start, trains the job on 2 tasks
    exactly as torchrun's two nodes did."""
    config = write_job(tmp_path)
    train = start(
        ['bash', str(REPO_ROOT / 'tools/slurm_train.sh'), 'cpu', 'densevit',
         str(config), 'work'], tmp_path, 'train.log',
        slurm_env(tmp_path, GPUS=2, GPUS_PER_NODE=2,
                  FAKE_SRUN_ARGS='srun_args.txt'))
    log = finish([train], tmp_path)['train.log']
    args = (tmp_path / 'srun_args.txt').read_text().splitlines()
    assert args[:2] == ['-p', 'cpu'] and '--ntasks=2' in args
    assert args[-3:] == [str(config), '--work-dir=work', '--launcher=slurm']
    assert 'gloo process group started for the slurm launcher' in log
    slurm = final_state(tmp_path / 'work')['state_dict']
    torchrun = final_state(two_nodes / 'nodes')['state_dict']
    for key, value in torchrun.items():
        assert torch.equal(slurm[key], value), key


def test_launch_scripts_parse():
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_run.sh',
                   'slurm_train.sh', 'slurm_test.sh'):
        proc = subprocess.run(
            ['bash', '-n', str(REPO_ROOT / 'tools' / script)],
            capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_slurm_test_sh_asks_srun_for_one_test_task_per_gpu(tmp_path):
    """What tools/slurm_test.sh hands srun (the stand-in records it and
    runs nothing): mmpretrain's options, GPUS tasks, and tools/test.py
    with the config, the checkpoint, the options and ``--launcher=slurm``
    (tools/slurm_run.sh, which runs it, is what the training test runs)."""
    args_file = tmp_path / 'srun_args.txt'
    proc = subprocess.run(
        ['bash', str(REPO_ROOT / 'tools/slurm_test.sh'), 'gpu', 'eval',
         'cfg.py', 'ckpt.pth', '--out', 'm.json'],
        env=slurm_env(tmp_path, GPUS=16, GPUS_PER_NODE=8,
                      SRUN_ARGS='--time=10', FAKE_SRUN_ARGS=args_file,
                      FAKE_SRUN_DRY_RUN=1),
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert args_file.read_text().splitlines() == [
        '-p', 'gpu', '--job-name=eval', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        '--time=10', 'python', '-u', f'{REPO_ROOT}/tools/test.py', 'cfg.py',
        'ckpt.pth', '--out', 'm.json', '--launcher=slurm'
    ]


def test_stock_static_rendezvous_keeps_the_failed_attempts_keys():
    """Premise of dist_train.sh's c10d rendezvous with an unshared store for
    ``MAX_RESTARTS`` (pytorch/pytorch#135712): torchrun's static rendezvous
    (``--master_addr/--master_port``) hands the processes of every attempt
    the same store, so a restarted process group can read the addresses
    the failed attempt's processes published (gloo then connects to a dead
    port, NCCL to a stale id: the restart fails or hangs)."""
    from torch.distributed import TCPStore
    from torch.distributed.elastic.rendezvous.static_tcp_rendezvous import \
        StaticTCPRendezvous

    port = free_port()
    rendezvous = StaticTCPRendezvous('127.0.0.1', port, rank=0, world_size=1,
                                     run_id='job', timeout=10)
    assert rendezvous.use_agent_store
    rendezvous.next_rendezvous()

    def worker_store():  # what a process connects to: MASTER_ADDR/PORT
        return TCPStore('127.0.0.1', port, world_size=1, is_master=False)

    worker_store().set('rank_1_address', 'address of attempt 0')
    rendezvous.next_rendezvous()  # the restart
    assert worker_store().get('rank_1_address') == \
        b'address of attempt 0'
