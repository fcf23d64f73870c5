// Sorting and filtering for the report page's tables (table.data). The controls above each table are written by
// reports/interactive.py: a search box and one select per filterable column; a row stays shown when it contains the
// search text and has the selected value in every selected column. A click on a header sorts by that column
// (numbers by value, with the tables' K/M/G/T/P suffixes; text otherwise), a second click reverses the order.
(function () {
  "use strict";
  const SUFFIX = {K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15};
  const NUMBER = /^([+\u2212-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*([KMGTP](?![a-z]))?/i;

  function numeric(text) {
    const match = NUMBER.exec(text.trim());
    if (!match) return null;
    return parseFloat(match[1].replace("\u2212", "-")) * (match[2] ? SUFFIX[match[2].toUpperCase()] : 1);
  }

  function filter(table, tools) {
    const query = tools.querySelector("input[type=search]").value.trim().toLowerCase();
    const selects = Array.from(tools.querySelectorAll("select"));
    const rows = Array.from(table.tBodies[0].rows);
    let shown = 0;
    for (const row of rows) {
      const keep = (!query || row.textContent.toLowerCase().includes(query)) &&
        selects.every((s) => s.value === "" || row.cells[Number(s.dataset.column)].textContent === s.value);
      row.hidden = !keep;
      shown += keep ? 1 : 0;
    }
    tools.querySelector(".count").textContent = shown + " of " + rows.length + " rows";
  }

  function sort(table, column) {
    const header = table.tHead.rows[0].cells[column];
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    for (const cell of table.tHead.rows[0].cells) cell.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const keyed = Array.from(table.tBodies[0].rows, (row) => {
      const text = row.cells[column].textContent;
      return {row: row, text: text, number: numeric(text), index: Number(row.dataset.index)};
    });
    keyed.sort((a, b) => {
      let order;
      if (a.number !== null && b.number !== null) order = a.number - b.number;
      else if (a.number !== null || b.number !== null) order = a.number !== null ? -1 : 1;  // numbers before text
      else order = a.text.localeCompare(b.text, undefined, {numeric: true});
      return (ascending ? order : -order) || a.index - b.index;
    });
    table.tBodies[0].append(...keyed.map((k) => k.row));
  }

  for (const table of document.querySelectorAll("table.data")) {
    const tools = document.querySelector('.tools[data-table="' + table.id + '"]');
    Array.from(table.tHead.rows[0].cells).forEach((cell, column) => {
      cell.tabIndex = 0;
      cell.title = "sort by this column";
      cell.addEventListener("click", () => sort(table, column));
      cell.addEventListener("keydown", (event) => { if (event.key === "Enter") sort(table, column); });
    });
    if (tools) {
      tools.querySelector("input[type=search]").addEventListener("input", () => filter(table, tools));
      for (const select of tools.querySelectorAll("select")) select.addEventListener("change", () => filter(table, tools));
    }
  }
})();
