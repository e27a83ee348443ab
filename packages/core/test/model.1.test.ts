// The model check (model.ts), part 1 of MODEL_PARTS: the groups whose index in CONFIGS leaves 1.
import { modelCheck } from "./model.js"

modelCheck(1)
