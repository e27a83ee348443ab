/**
 * TTL presets (the Rust crate's strategies): RealTime 10 s, ShortTerm 5 min, MediumTerm 1 h,
 * LongTerm 3 h, Default 5 min, or a Custom duration.
 *
 * @since 0.1.0
 */
import { Data, Duration } from "effect"

/**
 * A TTL preset.
 *
 * @category models
 * @since 0.1.0
 */
export type CacheStrategy = Data.TaggedEnum<{
  RealTime: {}
  ShortTerm: {}
  MediumTerm: {}
  LongTerm: {}
  Default: {}
  Custom: { readonly ttl: Duration.DurationInput }
}>

const ctor = Data.taggedEnum<CacheStrategy>()

/**
 * Real-time data: 10 seconds.
 *
 * @category constructors
 * @since 0.1.0
 */
export const RealTime: CacheStrategy = ctor.RealTime()
/**
 * Short-term data: 5 minutes.
 *
 * @category constructors
 * @since 0.1.0
 */
export const ShortTerm: CacheStrategy = ctor.ShortTerm()
/**
 * Medium-term data: 1 hour.
 *
 * @category constructors
 * @since 0.1.0
 */
export const MediumTerm: CacheStrategy = ctor.MediumTerm()
/**
 * Long-term data: 3 hours.
 *
 * @category constructors
 * @since 0.1.0
 */
export const LongTerm: CacheStrategy = ctor.LongTerm()
/**
 * The default: 5 minutes.
 *
 * @category constructors
 * @since 0.1.0
 */
export const Default: CacheStrategy = ctor.Default()
/**
 * Any duration (checked when used: it must be finite and at least 1 ms).
 *
 * @category constructors
 * @since 0.1.0
 */
export const Custom = (ttl: Duration.DurationInput): CacheStrategy => ctor.Custom({ ttl })

/**
 * Whether a value is a strategy.
 *
 * @category guards
 * @since 0.1.0
 */
export const isCacheStrategy = (u: unknown): u is CacheStrategy =>
  typeof u === "object" &&
  u !== null &&
  "_tag" in u &&
  ["RealTime", "ShortTerm", "MediumTerm", "LongTerm", "Default", "Custom"].includes(
    (u as { _tag: string })._tag
  )

/**
 * The TTL of a strategy, as given (a Custom input is checked where it is used: a negative,
 * NaN or infinite one is refused with a `CacheInputError`, never silently read as zero).
 *
 * @category conversions
 * @since 0.1.0
 */
export const toDurationInput: (strategy: CacheStrategy) => Duration.DurationInput = ctor.$match({
  RealTime: () => Duration.seconds(10),
  ShortTerm: () => Duration.minutes(5),
  MediumTerm: () => Duration.hours(1),
  LongTerm: () => Duration.hours(3),
  Default: () => Duration.minutes(5),
  Custom: ({ ttl }) => ttl
})

/**
 * The TTL of a strategy as a Duration.
 *
 * @category conversions
 * @since 0.1.0
 */
export const toDuration = (strategy: CacheStrategy): Duration.Duration =>
  Duration.decode(toDurationInput(strategy))
