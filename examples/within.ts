/**
 * Shared by the examples' main scripts: `promise`, or a rejection naming `what` after `ms`. Every wait of an example is
 * bounded, so a failure says what it waited for instead of hanging (test/examples runs them as their scripts do).
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
