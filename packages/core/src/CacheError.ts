/**
 * Typed errors of tiercache, one class per failure family.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A tier (memory, Redis, a test tier...) failed an operation. Reads never fail with it: a
 * failed tier is counted, logged and skipped. A write fails with it only when every tier failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class TierError extends Schema.TaggedError<TierError>("@tiercache/core/TierError")("TierError", {
  /** The tier's name (`memory`, `redis`, ...). */
  tier: Schema.String,
  /** The operation that failed (`get`, `set`, `remove`, ...). */
  operation: Schema.String,
  /** What went wrong, for people. */
  reason: Schema.String,
  /** The underlying failure, when there is one. */
  cause: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `tier ${this.tier} failed ${this.operation}: ${this.reason}`
  }
}

/**
 * Why an input was refused.
 *
 * @category errors
 * @since 0.1.0
 */
export const InputProblem = Schema.Literal(
  "EmptyKey",
  "InvalidKey",
  "InvalidTtl",
  "InvalidOption",
  "UnencodableValue",
  "ReentrantComputation"
)

/**
 * @category errors
 * @since 0.1.0
 */
export type InputProblem = typeof InputProblem.Type

/**
 * Bad input: an empty or non-string key, a negative / NaN / infinite TTL, a value that cannot
 * be encoded, a getOrCompute from inside the computation of its own key (which would wait for
 * itself). Raised before anything is written.
 *
 * @category errors
 * @since 0.1.0
 */
export class CacheInputError extends Schema.TaggedError<CacheInputError>("@tiercache/core/CacheInputError")(
  "CacheInputError",
  {
    /** Which rule the input broke. */
    problem: InputProblem,
    /** What was wrong, naming the offending key, option or path in the value. */
    reason: Schema.String
  }
) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.problem}: ${this.reason}`
  }
}

/**
 * A write reached no tier: every tier failed. Carries each tier's error.
 *
 * @category errors
 * @since 0.1.0
 */
export class CacheWriteError extends Schema.TaggedError<CacheWriteError>("@tiercache/core/CacheWriteError")(
  "CacheWriteError",
  {
    /**
     * The key (or pattern) that was being written or removed; for `invalidateMany`, its keys
     * joined by commas.
     */
    key: Schema.String,
    /** The operation (`set`, `invalidate`, `clear`, ...). */
    operation: Schema.String,
    /** One error per tier. */
    failures: Schema.Array(TierError)
  }
) {
  /** @since 0.1.0 */
  override get message(): string {
    return `${this.operation} of "${this.key}" failed on every tier: ${this.failures.map((f) => f.message).join("; ")}`
  }
}

/**
 * The invalidation bus failed to publish or to subscribe.
 *
 * @category errors
 * @since 0.1.0
 */
export class BusError extends Schema.TaggedError<BusError>("@tiercache/core/BusError")("BusError", {
  /** `publish` or `subscribe`. */
  operation: Schema.String,
  /** What went wrong. */
  reason: Schema.String,
  /** The underlying failure, when there is one. */
  cause: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `invalidation bus ${this.operation} failed: ${this.reason}`
  }
}

/**
 * A configuration that cannot work (a non-positive size, a scale outside (0, 1], ...),
 * raised when the layer is built.
 *
 * @category errors
 * @since 0.1.0
 */
export class CacheConfigError extends Schema.TaggedError<CacheConfigError>(
  "@tiercache/core/CacheConfigError"
)("CacheConfigError", {
  /** The option at fault. */
  option: Schema.String,
  /** What is wrong with it. */
  reason: Schema.String
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `invalid option ${this.option}: ${this.reason}`
  }
}

/**
 * Every error a TieredCache operation can fail with (besides the computation's own).
 *
 * @category errors
 * @since 0.1.0
 */
export type CacheError = CacheInputError | CacheWriteError | CacheTimeoutError

/**
 * A stream operation (publish, read, group, ack) failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class StreamError extends Schema.TaggedError<StreamError>("@tiercache/core/StreamError")(
  "StreamError",
  {
    /** The operation (`publish`, `read`, `readLatest`, `createGroup`, `consume`, `ack`). */
    operation: Schema.String,
    /** The stream's key. */
    stream: Schema.String,
    /** What went wrong. */
    reason: Schema.String,
    /** The underlying failure, when there is one. */
    cause: Schema.optional(Schema.Defect)
  }
) {
  /** @since 0.1.0 */
  override get message(): string {
    return `stream ${this.stream}: ${this.operation} failed: ${this.reason}`
  }
}

/**
 * A computation outlived the caller's hard timeout and no stale value could answer instead.
 * The computation goes on in the background and stores its result.
 *
 * @category errors
 * @since 0.1.0
 */
export class CacheTimeoutError extends Schema.TaggedError<CacheTimeoutError>(
  "@tiercache/core/CacheTimeoutError"
)("CacheTimeoutError", {
  /** The key whose computation timed out. */
  key: Schema.String,
  /** The hard timeout, in milliseconds. */
  timeoutMs: Schema.Number
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `computation of "${this.key}" took longer than ${this.timeoutMs} ms`
  }
}
