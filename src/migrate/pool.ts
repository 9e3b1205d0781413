//! Bounded concurrency over an async sequence, in order of issue.

/** Thrown when a walk stops because its signal fired. */
export class AbortedError extends Error {
  override readonly name = "AbortedError";
}

/**
 * Runs `task` on every item of `items`, at most `limit` at a time, starting them in the sequence's
 * order. The first failure (of a task or of the sequence) stops new starts; once the tasks in
 * flight have settled it is thrown. An aborted `signal` does the same with an `AbortedError`.
 */
export async function forEachConcurrent<T>(
  items: AsyncIterable<T>,
  limit: number,
  task: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const iterator = items[Symbol.asyncIterator]();
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && !signal?.aborted) {
      let next: IteratorResult<T>;
      try {
        next = await iterator.next();
      } catch (error) {
        failure ??= { error };
        return;
      }
      if (next.done || failure !== undefined || signal?.aborted) return;
      try {
        await task(next.value);
      } catch (error) {
        failure ??= { error };
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (failure !== undefined) throw failure.error;
  if (signal?.aborted) throw new AbortedError("interrupted");
}
