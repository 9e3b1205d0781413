//! The listeners of a `ChangeLog` (`onChanges`): told what a durable commit changed, so watchers
//! in this process wake at once instead of waiting for their next poll.

import type { CommittedChanges } from "./types.js";

export class ChangeListeners {
  private readonly listeners = new Set<(committed: CommittedChanges) => void>();

  add(listener: (committed: CommittedChanges) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells every listener; one that throws does not keep the others (or the commit) from going on. */
  notify(committed: CommittedChanges): void {
    if (committed.size === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(committed);
      } catch {
        // A listener's failure is its own: the commit it reports already happened.
      }
    }
  }

  /** Tells every listener which stores changed, when the backend does not have the changes at hand. */
  notifyStores(storeIds: Iterable<string>): void {
    this.notify(new Map([...storeIds].map((storeId) => [storeId, undefined])));
  }
}
