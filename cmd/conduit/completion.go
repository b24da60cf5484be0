package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/conduit-go/conduit/conduit"
)

// The completion scripts are generated from commands and their tables of
// flags, like --help.

// shells are the shells completion writes scripts for.
var shells = []string{"bash", "zsh", "fish"}

// schemes are the URI schemes completion offers.
func schemes() []string {
	var all []string
	for _, s := range append(append([]string{}, nonTLSSchemes...), tlsSchemes...) {
		all = append(all, s+"://")
	}
	// The proxy listeners' schemes (listen socks5://…, connect://…).
	return append(all, conduit.ProxySchemeSOCKS5+"://", conduit.ProxySchemeConnect+"://")
}

func runCompletion(_ context.Context, _ *options, args []string, s *stdio) int {
	switch args[0] {
	case "bash":
		io.WriteString(s.out, bashCompletion(s.all))
	case "zsh":
		io.WriteString(s.out, zshCompletion(s.all))
	case "fish":
		io.WriteString(s.out, fishCompletion(s.all))
	default:
		return fail(s.log, s.cmd, usagef("unknown shell %q: want bash, zsh or fish", args[0]))
	}
	return 0
}

// flagNames are the spellings of the flags of cmd.
func flagNames(cmd *command) []string {
	var names []string
	for _, f := range append(cmd.flags, &helpFlag) {
		names = append(names, "--"+f.name)
		if f.short != "" {
			names = append(names, "-"+f.short)
		}
	}
	return names
}

// spellings is "--name|-n" for a case pattern.
func spellings(f *flagDef) string {
	s := "--" + f.name
	if f.short != "" {
		s += "|-" + f.short
	}
	return s
}

func commandNames(commands []*command) []string {
	names := []string{"help"}
	for _, c := range commands {
		names = append(names, c.name)
	}
	return names
}

// argValues are the values completion offers for cmd's positional
// arguments.
func argValues(cmd *command) []string {
	switch cmd.name {
	case "completion":
		return shells
	case "demo", "version":
		return nil
	}
	return schemes()
}

func bashCompletion(commands []*command) string {
	var b strings.Builder
	b.WriteString(`# bash completion for conduit; load with: source <(conduit completion bash)
_conduit() {
  local cur prev cmd flags args
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  cmd="${COMP_WORDS[1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "` + strings.Join(commandNames(commands), " ") + ` -l --listen --version --help" -- "$cur") ); return
  fi
  case "$cmd" in
    -l|--listen) cmd=listen ;;
  esac
  case "$cmd" in
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "    %s)\n      case \"$prev\" in\n", c.name)
		for _, f := range c.flags {
			switch {
			case f.file:
				fmt.Fprintf(&b, "        %s) COMPREPLY=( $(compgen -f -- \"$cur\") ); return ;;\n", spellings(f))
			case f.choices != nil:
				fmt.Fprintf(&b, "        %s) COMPREPLY=( $(compgen -W %q -- \"$cur\") ); return ;;\n", spellings(f), strings.Join(f.choices, " "))
			case f.takesValue():
				fmt.Fprintf(&b, "        %s) return ;;\n", spellings(f))
			}
		}
		fmt.Fprintf(&b, "      esac\n      flags=%q\n      args=%q\n      ;;\n", strings.Join(flagNames(c), " "), strings.Join(argValues(c), " "))
	}
	b.WriteString(`  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$flags" -- "$cur") ); return
  fi
  COMPREPLY=( $(compgen -W "$args" -- "$cur") )
}
complete -o nospace -F _conduit conduit
`)
	return b.String()
}

// zshQuote makes s safe inside a single-quoted _arguments description.
func zshQuote(s string) string {
	s, _, _ = strings.Cut(s, ";")
	s, _, _ = strings.Cut(s, " (")
	return strings.NewReplacer("'", "", "[", "(", "]", ")", ":", " ", `\`, "").Replace(s)
}

func zshCompletion(commands []*command) string {
	var b strings.Builder
	b.WriteString("#compdef conduit\n# zsh completion for conduit; load with: source <(conduit completion zsh)\n_conduit() {\n  local -a cmds\n  cmds=(")
	for _, c := range commands {
		fmt.Fprintf(&b, "\n    '%s:%s'", c.name, zshQuote(c.summary))
	}
	b.WriteString("\n  )\n  if (( CURRENT == 2 )); then\n    _describe 'command' cmds; return\n  fi\n  local cmd=$words[2]\n  [[ $cmd == -l || $cmd == --listen ]] && cmd=listen\n  case $cmd in\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "    %s)\n      _arguments -s", c.name)
		for _, f := range append(c.flags, &helpFlag) {
			action := ""
			switch {
			case f.file:
				action = ":" + f.arg + ":_files"
			case f.choices != nil:
				action = ":" + f.arg + ":(" + strings.Join(f.choices, " ") + ")"
			case f.takesValue():
				action = ":" + f.arg + ":"
			}
			repeat := ""
			if f.count {
				repeat = "*"
			}
			fmt.Fprintf(&b, " \\\n        '%s--%s[%s]%s'", repeat, f.name, zshQuote(f.help), action)
			if f.short != "" {
				fmt.Fprintf(&b, " \\\n        '%s-%s[%s]%s'", repeat, f.short, zshQuote(f.help), action)
			}
		}
		if vals := argValues(c); len(vals) > 0 {
			fmt.Fprintf(&b, " \\\n        '*:%s:(%s)'", strings.ToLower(strings.Fields(c.args)[0]), strings.Join(vals, " "))
		}
		b.WriteString("\n      ;;\n")
	}
	b.WriteString("  esac\n}\ncompdef _conduit conduit\n")
	return b.String()
}

// fishQuote makes s safe inside single quotes in fish.
func fishQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s)
}

func fishCompletion(commands []*command) string {
	var b strings.Builder
	b.WriteString("# fish completion for conduit; load with: conduit completion fish | source\ncomplete -c conduit -f\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "complete -c conduit -n __fish_use_subcommand -a %s -d '%s'\n", c.name, fishQuote(c.summary))
	}
	b.WriteString("complete -c conduit -n __fish_use_subcommand -s l -l listen -d 'as conduit listen'\n")
	b.WriteString("complete -c conduit -n __fish_use_subcommand -l version -d 'print the version'\n")
	for _, c := range commands {
		cond := "'__fish_seen_subcommand_from " + c.name + "'"
		if c.name == "listen" {
			cond = "'__fish_seen_subcommand_from listen -l --listen'"
		}
		for _, f := range append(c.flags, &helpFlag) {
			fmt.Fprintf(&b, "complete -c conduit -n %s -l %s", cond, f.name)
			if f.short != "" {
				fmt.Fprintf(&b, " -s %s", f.short)
			}
			switch {
			case f.file:
				b.WriteString(" -r -F")
			case f.choices != nil:
				fmt.Fprintf(&b, " -x -a '%s'", strings.Join(f.choices, " "))
			case f.takesValue():
				b.WriteString(" -x")
			}
			fmt.Fprintf(&b, " -d '%s'\n", fishQuote(f.help))
		}
		if vals := argValues(c); len(vals) > 0 {
			fmt.Fprintf(&b, "complete -c conduit -n %s -a '%s'\n", cond, strings.Join(vals, " "))
		}
	}
	return b.String()
}
