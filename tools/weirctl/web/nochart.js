window.Chart = undefined; /* built without libjs-chart.js */
