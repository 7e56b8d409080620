// The few DOM helpers every card uses: an element by id, its text set, an element made
// with attributes and text (never HTML: archive contents are shown as text only).
export const $ = (id) => document.getElementById(id);

/** Sets `element`'s text; answers the element. */
export function text(element, value) {
  element.textContent = value;
  return element;
}

/** A new `tag` element with these attributes and text. */
export function make(tag, attributes = {}, content = "") {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.textContent = content;
  return element;
}
