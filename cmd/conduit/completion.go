package main

import (
	"fmt"
	"io"
)

const bashCompletion = `# bash completion for conduit; load with: source <(conduit completion bash)
_conduit() {
  local cur prev cmds flags
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  cmds="demo resolve dial listen relay bench completion help"
  flags="--hosts --ca --cert --key --insecure-skip-verify --keepalive --timeout --trace --stack --progress --json --echo --discard --max-conns --grace --duration --size --msg"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "$cmds" -- "$cur") ); return
  fi
  case "$prev" in
    --hosts|--ca|--cert|--key) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    --stack) COMPREPLY=( $(compgen -W "kernel" -- "$cur") ); return ;;
    --progress) COMPREPLY=( $(compgen -W "auto on off" -- "$cur") ); return ;;
    completion) COMPREPLY=( $(compgen -W "bash zsh" -- "$cur") ); return ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$flags" -- "$cur") ); return
  fi
  COMPREPLY=( $(compgen -W "tcp:// tls:// unix:// tls+unix:// vchan:// https:// http://" -- "$cur") )
}
complete -o nospace -F _conduit conduit
`

const zshCompletion = `#compdef conduit
# zsh completion for conduit; load with: source <(conduit completion zsh)
_conduit() {
  local -a cmds
  cmds=(demo:'every transport on loopback' resolve:'print the endpoints of a URI' dial:'connect and copy stdin/stdout'
        listen:'accept connections' relay:'forward connections' bench:'measure an echo peer' completion:'print a completion script')
  if (( CURRENT == 2 )); then
    _describe 'command' cmds; return
  fi
  _arguments \
    '--hosts[hosts file]:file:_files' '--ca[CA file]:file:_files' '--cert[certificate file]:file:_files' \
    '--key[key file]:file:_files' '--insecure-skip-verify[accept any certificate]' \
    '--keepalive[AFTER,INTERVAL,PROBES]:keepalive:' '--timeout[duration]:duration:' '--trace[print dial phases]' \
    '--stack[TCP stack]:stack:(kernel)' '--progress[live byte count]:mode:(auto on off)' '--json[JSON output]' \
    '--echo[send back]' '--discard[drop input]' '--max-conns[limit]:n:' '--grace[duration]:duration:' \
    '--duration[duration]:duration:' '--size[bytes]:n:' '--msg[bytes]:n:' \
    '*:uri:(tcp:// tls:// unix:// tls+unix:// vchan:// https://)'
}
compdef _conduit conduit
`

func runCompletion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: conduit completion bash|zsh")
		return 2
	}
	switch args[0] {
	case "bash":
		io.WriteString(stdout, bashCompletion)
	case "zsh":
		io.WriteString(stdout, zshCompletion)
	default:
		fmt.Fprintf(stderr, "conduit: completion: unknown shell %q (bash or zsh)\n", args[0])
		return 2
	}
	return 0
}
