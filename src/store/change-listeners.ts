//! The listeners of a `ChangeLog` (`onChanges`): told which stores a durable commit changed, so
//! watchers in this process wake at once instead of waiting for their next poll.

export class ChangeListeners {
  private readonly listeners = new Set<(storeIds: ReadonlySet<string>) => void>();

  add(listener: (storeIds: ReadonlySet<string>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells every listener; one that throws does not keep the others (or the commit) from going on. */
  notify(storeIds: ReadonlySet<string>): void {
    if (storeIds.size === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(storeIds);
      } catch {
        // A listener's failure is its own: the commit it reports already happened.
      }
    }
  }
}
