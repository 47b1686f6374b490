// Run-time statistics of BPF programs. The kernel only counts run time and
// run count while stats are enabled, which costs a little per run; holding
// the fd from BPF_ENABLE_STATS enables them until it is closed.
import { check } from './errors.js';
import { libbpf, libc } from './libbpf.js';

export { progInfo, type ProgInfo } from './info.js';

const BPF_STATS_RUN_TIME = 0;

/** Enables run_time_ns/run_cnt accounting; call the returned function to release it. */
export function enableBpfStats(): () => void {
  const fd = check('bpf_enable_stats(BPF_STATS_RUN_TIME)', libbpf().bpf_enable_stats(BPF_STATS_RUN_TIME));
  let open = true;
  return () => {
    if (!open) return;
    open = false;
    libc().close(fd);
  };
}
