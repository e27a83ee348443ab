// The model check (model.ts), part 0 of MODEL_PARTS: the groups whose index in CONFIGS leaves 0.
import { modelCheck } from "./model.js"

modelCheck(0)
