// The pages' element makers: text goes in as text (textContent), never as HTML.

export function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// A table with its head row of `titles`: {table, body}, the body to add rows to.
export function headedTable(titles, className) {
  const table = element("table", null, className);
  const head = table.createTHead().insertRow();
  for (const title of titles) head.appendChild(element("th", title));
  return { table, body: table.createTBody() };
}
