// BpfLink: one attachment (bpf_link) of a program to a hook. A link lives as
// long as an fd or a bpffs pin refers to it: pin it, close the fd and the
// program stays attached (tollgate's fail-static datapath); update() swaps the
// program atomically.
import { KernelError, check, unlinkPin } from './errors.js';
import { linkInfo, type LinkInfo } from './info.js';
import { libbpf, libc, type Ptr } from './libbpf.js';

export class BpfLink {
  #fd: number;
  /** struct bpf_link * when libbpf made the link (it may own more than the fd, e.g. a perf event). */
  #handle: Ptr | null;
  #pinPath: string | undefined;
  readonly description: string;

  /** @internal use BpfProgram.attach*() or BpfLink.openPinned() */
  constructor(fd: number, handle: Ptr | null, description: string, pinPath?: string) {
    this.#fd = fd;
    this.#handle = handle;
    this.description = description;
    this.#pinPath = pinPath;
  }

  /** Adopts a link pinned in bpffs (e.g. by a previous agent run). */
  static openPinned(path: string): BpfLink {
    const fd = check(`bpf_obj_get(${path})`, libbpf().bpf_obj_get(path));
    return new BpfLink(fd, null, `pinned link ${path}`, path);
  }

  get fd(): number {
    if (this.#fd < 0) throw new Error(`link (${this.description}) is closed`);
    return this.#fd;
  }

  get pinPath(): string | undefined {
    return this.#pinPath;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** What the kernel says about this link: type, program id, ifindex, attach type. */
  get info(): LinkInfo {
    return linkInfo(this.fd);
  }

  pin(path: string): void {
    check(`bpf_obj_pin(link ${this.description}, ${path})`, libbpf().bpf_obj_pin(this.fd, path));
    this.#pinPath = path;
  }

  /** Removes the pin; the link stays attached while this object's fd is open. */
  unpin(): void {
    if (!this.#pinPath) throw new Error(`link (${this.description}) is not pinned`);
    unlinkPin(this.#pinPath);
    this.#pinPath = undefined;
  }

  /** Atomically replaces the attached program (bpf_link_update). */
  update(prog: { fd: number; name: string }): void {
    check(`bpf_link_update(${this.description} -> ${prog.name})`, libbpf().bpf_link_update(this.fd, prog.fd, null));
  }

  /**
   * Detaches the program even though pins or other fds still hold the link
   * (bpf_link_detach); the link object stays and reports as defunct.
   */
  detach(): void {
    check(`bpf_link_detach(${this.description})`, libbpf().bpf_link_detach(this.fd));
  }

  /**
   * Drops this process's reference. A pinned link stays attached; an
   * unpinned one is detached by the kernel. Idempotent.
   */
  close(): void {
    if (this.#fd < 0) return;
    if (this.#handle !== null) {
      const r = libbpf().bpf_link__destroy(this.#handle) as number;
      this.#handle = null;
      this.#fd = -1;
      if (r < 0 && r !== -9 /* EBADF */) throw new KernelError(`bpf_link__destroy(${this.description})`, -r);
      return;
    }
    libc().close(this.#fd);
    this.#fd = -1;
  }
}
