// Package config is the gateway's configuration: one typed struct (Config)
// whose fields each document their key, environment variable and default;
// Load reads it once, in cmd/gateway, from an optional file, the
// environment and the flags (flags win, then the environment, then the
// file, then Default), and Validate checks it. Every invalid value is an
// error naming the key, its environment variable and the value (secrets
// are never quoted). No other package reads the environment or viper: the
// struct is passed down.
//
// Default takes each package's own default (bus.DefaultStream,
// gateway.DefaultPingInterval, ...) so that every default has one source.
package config
