export * from "../../src/testing/widgetBus.js";
