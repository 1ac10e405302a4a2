// Which backends clients hold now, per tenant (pool.tenant_max_backends), and the utilisation alerts that follow from it.
import { Saturation, type SaturationKind } from './pool-policy.js';
import type { PoolSettings } from './pool-types.js';
import type { ServerConn } from './server.js';

export class Holds {
  /** Backends held by a client now, with the client's tenant (pool.tenant_max_backends). */
  private readonly heldBy = new Map<ServerConn, string | null>();
  private readonly tenantHeld = new Map<string, number>();
  private readonly saturation: Saturation;

  /**
   * @param backends how many backends are open (for the overflow utilisation)
   * @param saturated told when utilisation crosses pool.alert_threshold, or falls back below it with hysteresis
   */
  constructor(
    private readonly pool: PoolSettings,
    private readonly backends: { readonly open: number },
    saturated: (kind: SaturationKind, saturated: boolean, utilisation: number) => void,
  ) {
    this.saturation = new Saturation(saturated, () => this.pool.cfg.alert_recovery_ms);
  }

  /** Backends held by a client now (checked out). */
  get count(): number {
    return this.heldBy.size;
  }

  /** False while `tenant` holds pool.tenant_max_backends already (null: trusted, uncapped). */
  mayHold(tenant: string | null): boolean {
    const max = this.pool.cfg.tenant_max_backends;
    return max === 0 || tenant === null || (this.tenantHeld.get(tenant) ?? 0) < max;
  }

  hold(conn: ServerConn, tenant: string | null): void {
    this.heldBy.set(conn, tenant);
    if (tenant !== null) this.tenantHeld.set(tenant, (this.tenantHeld.get(tenant) ?? 0) + 1);
    this.observe();
  }

  unhold(conn: ServerConn): void {
    if (!this.heldBy.has(conn)) return;
    const tenant = this.heldBy.get(conn)!;
    this.heldBy.delete(conn);
    this.observe();
    if (tenant === null) return;
    const n = (this.tenantHeld.get(tenant) ?? 1) - 1;
    if (n <= 0) this.tenantHeld.delete(tenant);
    else this.tenantHeld.set(tenant, n);
  }

  /** Held backends over the cap, and overflow in use over overflow: POOL_SATURATED / POOL_RECOVERED. */
  observe(): void {
    const cfg = this.pool.cfg;
    const t = cfg.alert_threshold;
    this.saturation.observe('cap', this.heldBy.size / this.pool.cap, t);
    this.saturation.observe('overflow', cfg.overflow === 0 ? NaN : Math.max(0, this.backends.open - cfg.size) / cfg.overflow, t);
  }

  /** Stops the recovery timers (pool closed). */
  stop(): void {
    this.saturation.stop();
  }
}
