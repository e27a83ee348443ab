/**
 * The name under which RedisTier defines its read script on the command connection. The
 * connection leaves it out of auto-pipelining: the tier already sends a tick's reads as one
 * call, and auto-pipelining would hold that call back until the next turn of the event loop
 * (measured: a lone read took about 1.3x as long).
 */
export const READ_COMMAND = "tiercacheRead"
