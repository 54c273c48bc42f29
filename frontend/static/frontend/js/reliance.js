// The reliance question's answers in plain words and the category each is stored as
// (docs/architecture.md "Reliance questions"): the workspace asks with them, the pair viewer
// reads a stored answer back in the same words.
import { modalityLabel } from "./example_view.js";

export function relianceOptions(mods) {
  const lower = (m) => modalityLabel(m).toLowerCase();
  const opts = mods.map((m) => ({ id: `specialization:${m.name}`, reliance: "specialization", modality: m.name, text: `Only the ${lower(m)}` }));
  const two = mods.length === 2;
  opts.push({ id: "equivalence", reliance: "equivalence", modality: "", text: two ? "Either one alone would do" : "Any one of them alone would do" });
  opts.push({ id: "synergy", reliance: "synergy", modality: "", text: two ? "I needed both together; neither alone says anything" : "I needed them together; none alone says anything" });
  opts.push({ id: "complementarity", reliance: "complementarity", modality: "", text: "Each gave part of the answer" });
  for (const m of mods) {
    const others = mods.filter((o) => o !== m);
    const rest = others.length === 1 ? `the ${lower(others[0])}` : "the others";
    opts.push({ id: `transfer:${m.name}`, reliance: "transfer", modality: m.name, text: `The ${lower(m)} told me how to read ${rest}` });
  }
  return opts;
}

/** The plain words of a stored answer (reliance, reliance_modality), or "" when none. */
export function relianceText(mods, reliance, modality) {
  if (!reliance) return "";
  const id = modality && (reliance === "specialization" || reliance === "transfer") ? `${reliance}:${modality}` : reliance;
  const found = relianceOptions(mods).find((o) => o.id === id);
  return found ? found.text : reliance;
}
